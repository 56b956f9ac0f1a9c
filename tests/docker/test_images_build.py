"""The two images, built for real, run what they are for (``make test-images``).

Needs the engine and the images that ``scripts/test-images.sh`` starts and builds (it then runs
this file with ``DOCKER_HOST`` pointing at that engine). Without an engine every test fails with
the command to run; nothing is skipped.

- both images run as uid 10001 and carry the commit they were built from;
- the compiled pipeline runs end to end under ``kfp.local.DockerRunner``, every task in the
  component image, with ``--network none``: the image holds everything a task needs;
- the server image, started the way the Deployment starts it (its ENTRYPOINT, read-only root
  filesystem, the model folder mounted read-only), answers an inference request with the same
  probability that the package gives on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from typing import Any

import pytest

from slipway.config import Settings, load_settings
from tests.support import REPO

pytestmark = pytest.mark.docker

ROOT = REPO
UID = 10001
HOW = "run `make test-images` (scripts/test-images.sh starts a private dockerd and builds both images)"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def engine() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as e:
        pytest.fail(
            f"no Docker engine at DOCKER_HOST={os.environ.get('DOCKER_HOST')!r} ({e}); {HOW}"
        )
    yield client
    client.close()


@pytest.fixture(scope="module")
def images(engine: Any) -> dict[str, Any]:
    import docker

    settings = Settings(image_registry="", git_commit="unused")
    found = {}
    for name, ref in (("components", settings.component_image), ("server", settings.server_image)):
        try:
            found[name] = engine.images.get(ref)
        except docker.errors.ImageNotFound:
            pytest.fail(f"image {ref} is not in the engine; {HOW}")
    return found


def _run(engine: Any, image: Any, *command: str, **kwargs: Any) -> str:
    out = engine.containers.run(image, list(command), remove=True, network_mode="none", **kwargs)
    return out.decode().strip()


def test_images_run_as_10001_and_record_their_commit(engine, images):
    for name, image in images.items():
        assert (
            _run(engine, image, "id", entrypoint=[])
            == f"uid={UID}(slipway) gid={UID}(slipway) groups={UID}(slipway)"
        ), name
        labels = image.labels
        env = dict(e.split("=", 1) for e in image.attrs["Config"]["Env"])
        assert labels["org.opencontainers.image.title"] == f"slipway-{name}"
        assert labels["org.opencontainers.image.version"] == "0.1.0"
        assert labels["org.opencontainers.image.revision"] == env["SLIPWAY_GIT_COMMIT"]
        assert env["SLIPWAY_GIT_COMMIT"] not in ("", "unknown")
    assert images["server"].attrs["Config"]["Entrypoint"] == ["python", "-m", "slipway", "serve"]
    assert images["components"].attrs["Config"]["Entrypoint"] in (None, [])


def test_component_image_has_the_locked_kfp_and_slipway(engine, images):
    import kfp

    code = "import kfp, slipway, sklearn, mlflow, dvc; print(kfp.__version__)"
    assert _run(engine, images["components"], "python3", "-c", code) == kfp.__version__
    # nothing of the build stage leaked into the runtime stage
    check = "test ! -e /src && test ! -e /opt/uv && echo clean || echo leaked"
    assert _run(engine, images["components"], "sh", "-c", check) == "clean"


@pytest.fixture(scope="module")
def pipeline_run(
    engine: Any, images: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run the committed compiled pipeline with every task in the component image.

    DockerRunner mounts only the pipeline root, at the same path, so the state folder (MLflow
    SQLite store, model store, DVC remote) and a clone of the project all live under it.
    """
    from kfp import local
    from kfp.components import load_component_from_file

    from pipelines.compiled import COMPILED
    from slipway.data.versioning import seed_datasets
    from slipway.params import load_params

    state = tmp_path_factory.mktemp("docker-run")
    state.chmod(0o755)
    project = state / "project"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(project)], check=True)
    settings = load_settings(
        state_dir=state,
        project_dir=project,
        dvc_repo=str(project),
        dvc_remote_url=str(state / "dvc-remote"),
        git_commit=images["components"].labels["org.opencontainers.image.revision"],
        image_registry="",
        image_tag="0.1.0",
    )
    seed_datasets(project, settings.dvc_remote_url)
    # the tasks run as uid 10001 and write into the state folder; git refuses a repository
    # owned by another user
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(state)], check=True)

    params = load_params(project / "params.yaml")
    local.init(
        runner=local.DockerRunner(network_mode="none", environment=settings.as_env()),
        pipeline_root=str(state),
        raise_on_error=True,
    )
    started = time.monotonic()
    task = load_component_from_file(str(COMPILED))(
        dataset_version="v2",
        dataset_rev="HEAD",
        data_params=params.data.model_dump(),
        search_params=params.search.model_dump(),
        evaluate_params=params.evaluate.model_dump(),
    )
    TIMINGS["pipeline_in_containers_s"] = round(time.monotonic() - started, 1)
    print(f"\ncompiled pipeline under DockerRunner: {TIMINGS['pipeline_in_containers_s']} s")
    from slipway.training.tracking import run_summary

    tags = run_summary(settings.tracking_uri, task.output)["tags"]
    return {
        "state": state,
        "settings": settings,
        "run_id": task.output,
        "project": project,
        "tags": tags,
        "version_code": tags.get("slipway.version_code"),
    }


def test_compiled_pipeline_runs_in_the_component_image(pipeline_run):
    state, tags = pipeline_run["state"], pipeline_run["tags"]
    assert tags["slipway.promoted"] == "true", tags.get("slipway.decision_reason")
    code = pipeline_run["version_code"]
    manifest = json.loads(
        (state / "store" / "models" / "slipway" / code / "manifest.json").read_text()
    )
    assert manifest["version_code"] == code
    assert manifest["git_commit"] == pipeline_run["settings"].git_commit
    # every task's outputs were written by the container user, not by this process
    outputs = [p for p in state.iterdir() if p.name.startswith("slipway-training-")]
    assert outputs
    assert all(p.stat().st_uid == UID for p in outputs[0].rglob("*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_image_answers_an_inference_request(engine, images, pipeline_run):
    import httpx
    import numpy as np
    import pandas as pd

    from slipway.packaging.package import load_package
    from slipway.packaging.store import LocalModelStore

    state, code = pipeline_run["state"], pipeline_run["version_code"]
    store_root = state / "store" / "models"
    # the EFS layout <root>/<model>/<version-code>/, as promotion wrote it locally (or the store)
    efs = state / "efs-mount"
    shutil.copytree(
        state / "efs" if (state / "efs" / "slipway" / code).is_dir() else store_root, efs
    )
    subprocess.run(["chmod", "-R", "a+rX", str(efs)], check=True)
    model, manifest = load_package(LocalModelStore(store_root), "slipway", code)
    features = [f["name"] for f in manifest["features"]]
    row = pd.read_csv(pipeline_run["project"] / "data" / "breast-cancer" / "v2.csv")[features].iloc[
        [0]
    ]
    expected = float(model.predict_proba(row)[0, 1])

    port = _free_port()
    started = time.monotonic()
    container = engine.containers.run(
        images["server"],
        ["--port", str(port)],
        detach=True,
        network_mode="host",
        read_only=True,
        tmpfs={"/tmp": ""},
        volumes={str(efs): {"bind": "/mnt/models", "mode": "ro"}},
        environment={
            "SLIPWAY_EFS_ROOT": "/mnt/models",
            "SLIPWAY_MODEL_NAME": "slipway",
            "SLIPWAY_MODEL_VERSION": code,
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = False
        for _ in range(120):
            container.reload()
            if container.status == "exited":
                break
            try:
                ready = httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.5)
        logs = container.logs().decode()[-3000:]
        assert ready, (
            f"the server container never became ready (status {container.status}):\n{logs}"
        )
        TIMINGS["server_ready_s"] = round(time.monotonic() - started, 1)
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, len(features)],
                    "datatype": "FP64",
                    "data": row.to_numpy().ravel().tolist(),
                }
            ]
        }
        response = httpx.post(f"{base}/v2/models/slipway/infer", json=body, timeout=10)
    finally:
        container.remove(force=True)
    print(f"\nserver ready in {TIMINGS['server_ready_s']} s; timings {TIMINGS}")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == code
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert outputs["label"] == [int(expected >= 0.5)]
    assert np.isclose(outputs["probability"][0], expected, atol=1e-5)
