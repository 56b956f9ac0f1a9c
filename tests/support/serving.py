"""Model packages for the serving tests: a small pipeline trained on the bundled data."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from slipway.config import load_settings
from slipway.data.table import DATASET_VERSIONS, TARGET, build_dataset
from slipway.packaging.package import PackageInfo, build_package
from slipway.packaging.store import MANIFEST, LocalModelStore
from slipway.serving import ServingLimits, create_app
from tests.support.processes import free_port, running

MODEL = "slipway"
VERSION = "v3-20260101-0a1b2c3d"


@functools.cache
def dataset() -> pd.DataFrame:
    return build_dataset(DATASET_VERSIONS["v2"])


def features() -> pd.DataFrame:
    return dataset().drop(columns=[TARGET])


@functools.cache
def trained(kind: str = "logistic_regression"):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic_regression":
        model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=5000))])
    else:
        model = Pipeline(
            [
                ("scaler", "passthrough"),
                ("clf", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)),
            ]
        )
    return model.fit(features(), dataset()[TARGET])


@functools.cache
def package_files(
    kind: str = "logistic_regression", version: str = VERSION, onnx: bool = True
) -> dict[str, bytes]:
    info = PackageInfo(
        model_name=MODEL,
        version_code=version,
        run_id="0a1b2c3d" * 4,
        registry_version=3,
        dataset={"version": "v2", "path": "data/breast-cancer/v2.csv", "md5": "0" * 32, "rev": ""},
        git_commit="test",
        metrics={"roc_auc": 0.99},
    )
    return build_package(
        trained(kind), features(), info, float(dataset()[TARGET].mean()), onnx=onnx
    )


def install_package(efs_root: Path, files: dict[str, bytes], version: str = VERSION) -> Path:
    """Write ``files`` as ``<efs_root>/slipway/<version>/`` and return that folder."""
    return Path(LocalModelStore(efs_root).put_package(MODEL, version, files))


def manifest_of(files: dict[str, bytes]) -> dict:
    return json.loads(files[MANIFEST])


INFER = "/v2/models/slipway/infer"


def infer_body(rows: int = 1, start: int = 0) -> dict:
    data = features().iloc[start : start + rows].to_numpy().ravel().tolist()
    return {"inputs": [{"name": "input-0", "shape": [rows, 30], "datatype": "FP64", "data": data}]}


def metric_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@contextmanager
def client_factory(tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, CollectorRegistry]]]:
    """Yield ``make(files=..., version=..., limits=..., install=...) -> (client, registry)``:
    a started app (model loaded before serving) on a package installed under ``tmp_path``."""
    clients: list[TestClient] = []

    def make(
        files: dict[str, bytes] | None = None,
        version: str = VERSION,
        limits: ServingLimits | None = None,
        install: bool = True,
    ) -> tuple[TestClient, CollectorRegistry]:
        efs = tmp_path / f"efs{len(clients)}"
        if install:
            install_package(efs, files if files is not None else package_files(), version)
        registry = CollectorRegistry()
        settings = load_settings(state_dir=tmp_path, efs_root=efs, model_version=version)
        app = create_app(settings, limits=limits, registry=registry, background_load=False)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client, registry

    try:
        yield make
    finally:
        for client in clients:
            client.__exit__(None, None, None)


@contextmanager
def serve_process(
    tmp_path: Path,
    *options: str,
    efs: Path | None = None,
    model: str = MODEL,
    version: str = VERSION,
) -> Iterator[tuple[subprocess.Popen, str, int, Path]]:
    """A real ``slipway serve`` of one installed package on a free port, until the block ends.

    Args:
        tmp_path: where the EFS folder, the state folder and the server log go.
        options: more ``slipway serve`` options, e.g. ``"--workers", "2"``.
        efs: an EFS folder already holding ``<model>/<version>/`` (a promotion's); default a
            new one under ``tmp_path`` with the breast-cancer test package.
        model: the model name to serve.
        version: the version code to serve; ``""`` sets none (``--champion``).

    Yields:
        ``(process, base URL, port, log file)`` once liveness answers.
    """
    if efs is None:
        efs = tmp_path / "efs"
        install_package(efs, package_files())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SLIPWAY_STATE_DIR": str(tmp_path / "state"),
        "SLIPWAY_EFS_ROOT": str(efs),
        "SLIPWAY_MODEL_NAME": model,
    }
    if version:  # none with --champion: the registry names it
        env["SLIPWAY_MODEL_VERSION"] = version
    argv = [sys.executable, "-m", "slipway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "server.log"
    with running([*argv, *options], f"{base}/v2/health/live", log, env=env) as proc:
        yield proc, base, port, log
