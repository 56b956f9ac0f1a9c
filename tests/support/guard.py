"""What the guard's end-to-end test and benchmark share: model packages good and bad, real
``slipway serve`` processes, a real Prometheus scraping them, and traffic routed to the version
the Deployment serves (the fake kubelet has no network: the test routes what a Service would).
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from slipway.data.table import TARGET
from slipway.packaging.package import PackageInfo, build_package
from tests.support import REPO
from tests.support.processes import free_port, running, wait_http
from tests.support.serving import (
    INFER,
    MODEL,
    dataset,
    features,
    infer_body,
    install_package,
    trained,
)


def package(model, version: str) -> dict[str, bytes]:
    """A package of ``model`` as ``version`` (scikit-learn runtime: no ONNX copy)."""
    info = PackageInfo(
        model_name=MODEL,
        version_code=version,
        run_id="0a1b2c3d" * 4,
        registry_version=1,
        dataset={"version": "v2", "path": "data/breast-cancer/v2.csv", "md5": "0" * 32, "rev": ""},
        git_commit="test",
        metrics={"roc_auc": 0.99},
    )
    return build_package(model, features(), info, float(dataset()[TARGET].mean()), onnx=False)


def raising_model():
    """A fitted pipeline whose classifier's weights no longer fit the inputs: predict raises."""
    model = copy.deepcopy(trained())
    clf = model.named_steps["clf"]
    clf.coef_ = clf.coef_[:, :-1].copy()  # 29 weights for 30 features: ValueError on predict
    return model


def one_class_model():
    """A fitted pipeline that predicts the positive class for every input."""
    model = copy.deepcopy(trained())
    model.named_steps["clf"].intercept_ = model.named_steps["clf"].intercept_ + 1e3
    return model


#: How much longer the slow version's predictions take: every request lands in the latency
#: histogram's (0.5, 1] bucket, so its p99 (about 1 s) is well above the p99-latency
#: threshold of 0.5 s, while a scrape waiting behind one prediction stays within its timeout.
SLOW_S = 0.6


@contextmanager
def model_server(
    tmp_path: Path, version: str, files: dict[str, bytes], *, delay_s: float = 0.0
) -> Iterator[str]:
    """A real ``slipway serve`` of ``files`` as ``version``; yields its base URL once ready.

    Args:
        tmp_path: Where the server's EFS folder, state and log go.
        version: The version code it serves.
        files: The package (:func:`package`).
        delay_s: Seconds added to every prediction (``tests.support.slow_serve``): a slow
            version; 0 runs ``python -m slipway serve`` itself.
    """
    folder = tmp_path / f"serve-{version}"
    install_package(folder / "efs", files, version)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SLIPWAY_STATE_DIR": str(folder / "state"),
        "SLIPWAY_EFS_ROOT": str(folder / "efs"),
        "SLIPWAY_MODEL_VERSION": version,
        "SLIPWAY_MODEL_NAME": MODEL,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    launcher = ["tests.support.slow_serve", f"{delay_s:g}"] if delay_s else ["slipway"]
    argv = [sys.executable, "-m", *launcher, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(argv, f"{base}/v2/health/live", folder / "server.log", env=env):
        wait_http(f"{base}/v2/health/ready", 60)
        yield base


@contextmanager
def prometheus(tmp_path: Path, targets: list[str], scrape_s: int = 1) -> Iterator[str]:
    """Debian's real ``prometheus`` scraping ``targets`` every ``scrape_s``; yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError(
            "prometheus is required: `make install` (scripts/ensure-debian-tools.sh "
            "promtool:prometheus installs Debian's prometheus package)"
        )
    folder = tmp_path / "prometheus"
    folder.mkdir()
    config = {
        "global": {"scrape_interval": f"{scrape_s}s", "scrape_timeout": f"{scrape_s}s"},
        "scrape_configs": [
            {
                "job_name": "slipway-server",
                "static_configs": [{"targets": [t.removeprefix("http://") for t in targets]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    with running(argv, f"http://127.0.0.1:{port}/-/ready", folder / "prometheus.log"):
        yield f"http://127.0.0.1:{port}"


class Traffic:
    """Sends inference requests to the server of whatever version ``served()`` names.

    Rows are taken in turn from the whole table, so the positive rate of the answers is the
    data's, as the prediction-drift KPI expects of real traffic.
    """

    def __init__(self, served: Callable[[], str], servers: dict[str, str]) -> None:
        self.served, self.servers = served, servers
        self.stop = threading.Event()
        self.sent: dict[str, dict[int, int]] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rows = len(features()) - 1
        bodies = [infer_body(rows=2, start=start) for start in range(0, rows, 7)]
        n = 0
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                version = self.served()
                for _ in range(10):
                    body, n = bodies[n % len(bodies)], n + 1
                    try:
                        status = http.post(self.servers[version] + INFER, json=body).status_code
                    except httpx.HTTPError:
                        status = 0
                    counts = self.sent.setdefault(version, {})
                    counts[status] = counts.get(status, 0) + 1
                    self.stop.wait(0.02)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def server_deployment(namespace: str, version: str, replicas: int = 1) -> dict[str, Any]:
    """A bare ``slipway-server`` Deployment pinning ``version`` (pause containers: no kubelet runs them)."""
    labels = {"app.kubernetes.io/name": "slipway", "app.kubernetes.io/component": "server"}
    container = {
        "name": "server",
        "image": "registry.k8s.io/pause:3.10",
        "env": [{"name": "MODEL_VERSION", "value": version}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "slipway-server", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
