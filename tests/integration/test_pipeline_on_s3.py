"""The training pipeline with every store on S3 (moto_server over HTTP): DVC remote, MLflow
artifacts through a real ``mlflow server``, model packages; then the efs-sync handler fed the
real S3 event the promotion raised."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from slipway.data.pull import pull_dataset
from slipway.data.table import DATASET_VERSIONS
from slipway.data.versioning import md5_file
from tests.support import REPO
from tests.support.aws import (
    FakeLambdaContext,
    client,
    new_bucket,
    new_idempotency_table,
    notify_queue,
    receive_events,
)
from tests.support.processes import VENV_BIN, free_port, running

pytestmark = pytest.mark.integration
PROJECT = REPO
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "AWS_", "MLFLOW_"))}
    return {**env, **CREDENTIALS, **extra}


@pytest.fixture(scope="session")
def s3_stack(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimpleNamespace]:
    """A versioned bucket, the DVC datasets pushed to it with `slipway data push`, and a real
    `mlflow server` (SQLite backend, artifacts proxied to s3://<bucket>/mlflow)."""
    root = tmp_path_factory.mktemp("s3-stack")
    bucket = new_bucket(moto_endpoint)
    # a data scientist's checkout: clone, seed (fills the DVC cache), then push to S3
    checkout = _fresh_clone(root)
    local = {"SLIPWAY_STATE_DIR": str(root / "push-state"), "SLIPWAY_PROJECT_DIR": str(checkout)}

    def data(verb: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "slipway"), "data", verb],
            cwd=checkout,
            env=_clean_env(**local, **env),
            capture_output=True,
            text=True,
            timeout=180,
        )

    s3 = {"SLIPWAY_DVC_REMOTE_URL": f"s3://{bucket}/dvc", "SLIPWAY_AWS_ENDPOINT_URL": moto_endpoint}
    refused = data("push", **s3)  # empty cache: a clear refusal, not "pushed 0 files"
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "run `slipway data seed` first" in refused.stderr
    seeded = data("seed")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    push = data("push", **s3)
    assert push.returncode == 0, push.stdout + push.stderr
    port = free_port()
    argv = [
        str(VENV_BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{bucket}/mlflow",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server_env = {
        **CREDENTIALS,
        "MLFLOW_S3_ENDPOINT_URL": moto_endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with running(argv, f"http://127.0.0.1:{port}/health", root / "mlflow.log", 120, server_env):
        yield SimpleNamespace(
            endpoint=moto_endpoint,
            bucket=bucket,
            push_output=push.stdout,
            tracking_uri=f"http://127.0.0.1:{port}",
            root=root,
        )


def _keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    pages = (
        client("s3", endpoint)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=prefix)
    )
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _pointer_md5(version: str) -> str:
    pointer = PROJECT / f"{DATASET_VERSIONS[version].path}.dvc"
    return yaml.safe_load(pointer.read_text())["outs"][0]["md5"]


def _fresh_clone(tmp_path: Path) -> Path:
    """The DVC project as a pipeline pod sees it: pointers from git, an empty DVC cache."""
    clone = tmp_path / "project"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
    assert not (clone / ".dvc" / "cache").exists()
    return clone


def test_dvc_push_and_pull_of_one_version_on_s3(s3_stack, aws_env, tmp_path) -> None:
    # breast-cancer v1, v2, penguins v1, diamonds v1 (the shipped datasets, dev dependencies)
    assert "pushed 4 file(s)" in s3_stack.push_output
    keys = _keys(s3_stack.endpoint, s3_stack.bucket, "dvc/")
    for version in ("v1", "v2"):
        md5 = _pointer_md5(version)
        assert f"dvc/files/md5/{md5[:2]}/{md5[2:]}" in keys

    dest = tmp_path / "v1.csv"
    pulled = pull_dataset(
        str(_fresh_clone(tmp_path)),
        "breast-cancer",
        "v1",
        dest,
        f"s3://{s3_stack.bucket}/dvc",
        aws_env,
        rev="HEAD",
    )
    assert pulled.ref.md5 == md5_file(dest) == _pointer_md5("v1")
    assert pulled.spec.name == pulled.ref.name == "breast-cancer"


@pytest.mark.slow
def test_pipeline_with_mlflow_dvc_and_models_on_s3_then_efs_sync(
    s3_stack, aws_env, tmp_path, monkeypatch
) -> None:
    from mlflow.tracking import MlflowClient

    from slipway.packaging import efs_sync
    from slipway.packaging.package import load_package
    from slipway.packaging.store import LocalModelStore

    queue = notify_queue(aws_env, s3_stack.bucket)
    state = tmp_path / "state"
    run = subprocess.run(
        [str(VENV_BIN / "slipway"), "run", "--dataset-version", "v2"],
        cwd=PROJECT,
        env=_clean_env(
            SLIPWAY_STATE_DIR=str(state),
            SLIPWAY_PROJECT_DIR=str(PROJECT),
            SLIPWAY_DVC_REPO=str(_fresh_clone(tmp_path)),
            SLIPWAY_DVC_REMOTE_URL=f"s3://{s3_stack.bucket}/dvc",
            SLIPWAY_AWS_ENDPOINT_URL=aws_env,
            SLIPWAY_TRACKING_URI=s3_stack.tracking_uri,
            SLIPWAY_MODEL_STORE_URL=f"s3://{s3_stack.bucket}/models",
        ),
        capture_output=True,
        text=True,
        timeout=420,
    )
    (tmp_path / "run.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    # MLflow: the registered champion's model artifacts are objects in the bucket
    mlflow = MlflowClient(s3_stack.tracking_uri)
    champion = mlflow.get_model_version_by_alias("slipway", "champion")
    code = champion.tags["version_code"]
    mlflow_keys = _keys(aws_env, s3_stack.bucket, "mlflow/")
    assert champion.source.startswith("models:/m-"), champion.source  # an MLflow 3 logged model
    # the model the run logged (registration through a server may point the version at a copy)
    experiment = mlflow.get_experiment_by_name("slipway")
    logged = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id])
    run_models = [m.model_id for m in logged if m.source_run_id == champion.run_id]
    assert run_models, [(m.model_id, m.source_run_id) for m in logged]
    model_keys = [
        k for k in mlflow_keys if any(f"/models/{mid}/artifacts/" in k for mid in run_models)
    ]
    assert any(k.endswith("/MLmodel") for k in model_keys), (champion.source, mlflow_keys)
    assert any(k.endswith("/model.skops") for k in model_keys), model_keys
    assert any(champion.run_id in k and k.endswith("promotion.json") for k in mlflow_keys)
    # the run's figures and HTML report went to the bucket through the tracking server
    for name in ("figures/roc.png", "figures/confusion_matrix.png", "report.html"):
        assert any(champion.run_id in k and k.endswith(name) for k in mlflow_keys), name
    assert not (state / "mlartifacts").exists()  # nothing went to a local artifact folder

    # the package is on S3, with the champion marker beside it
    package_keys = _keys(aws_env, s3_stack.bucket, f"models/slipway/{code}/")
    listed = json.loads(
        client("s3", aws_env)
        .get_object(Bucket=s3_stack.bucket, Key=f"models/slipway/{code}/manifest.json")["Body"]
        .read()
    )["files"]
    assert "model.skops" in listed
    assert sorted(package_keys) == sorted(
        f"models/slipway/{code}/{name}" for name in [*listed, "manifest.json"]
    )
    assert "models/slipway/champion.json" in _keys(aws_env, s3_stack.bucket, "models/slipway/c")

    # the promotion's S3 event, handed to the Lambda handler, puts a loadable package on EFS
    events = receive_events(aws_env, queue)
    assert len(events) == 1
    efs_root = tmp_path / "mnt" / "models"
    for key, value in {
        "SLIPWAY_STATE_DIR": str(tmp_path / "lambda"),
        "SLIPWAY_EFS_ROOT": str(efs_root),
        "SLIPWAY_MODEL_STORE_URL": f"s3://{s3_stack.bucket}/models",
        "SLIPWAY_IDEMPOTENCY_TABLE": new_idempotency_table(aws_env),
        "SLIPWAY_AWS_ENDPOINT_URL": aws_env,
        "SLIPWAY_GIT_COMMIT": "test",
    }.items():
        monkeypatch.setenv(key, value)
    result = efs_sync.handler(events[0], FakeLambdaContext())["results"][0]
    assert result["path"] == str(efs_root / "slipway" / code)
    assert result["champion"] == code
    model, manifest = load_package(LocalModelStore(efs_root), "slipway", code)
    assert manifest["version_code"] == code
    assert manifest["dataset"]["version"] == "v2"
    assert hasattr(model, "predict_proba")
