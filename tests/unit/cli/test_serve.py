"""``slipway serve``'s limits: option, then SLIPWAY_SERVE_* variable, then ServingLimits' default;
and what the CLI resolved is what its worker processes rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from slipway.cli import app as cli
from slipway.serving import ServingLimits
from slipway.serving.limits import LIMIT_ENV
from slipway.serving.server import limits_to_env


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[ServingLimits]:
    """``run_server`` replaced by a recorder of the limits it is given."""
    seen: list[ServingLimits] = []
    monkeypatch.setattr(
        "slipway.serving.server.run_server",
        lambda settings, host, port, workers, limits, multiproc_dir: seen.append(limits),
    )
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SLIPWAY_MODEL_VERSION", "v3-20260101-0a1b2c3d")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    for name in LIMIT_ENV.values():
        monkeypatch.delenv(name, raising=False)
    return seen


def serve(*argv: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *argv])
    assert result.exit_code == 0, result.output


def test_defaults_are_serving_limits_defaults(started: list[ServingLimits]) -> None:
    serve()
    assert started == [ServingLimits()]
    assert started[0].max_body_bytes == 2 * 1024 * 1024


def test_max_body_bytes_option(started: list[ServingLimits]) -> None:
    serve("--max-body-bytes", "1234", "--max-batch-rows", "7", "--max-concurrency", "3")
    assert started == [ServingLimits(max_batch_rows=7, max_concurrency=3, max_body_bytes=1234)]


def test_environment_is_read_not_overwritten(
    started: list[ServingLimits], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_SERVE_MAX_BODY_BYTES", "4321")
    serve()
    assert started[-1].max_body_bytes == 4321
    assert limits_to_env(started[-1])["SLIPWAY_SERVE_MAX_BODY_BYTES"] == "4321"  # to the workers
    serve("--max-body-bytes", "99")  # the option wins
    assert started[-1].max_body_bytes == 99


PROJECT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("argv", "model"),
    [
        ([], "slipway"),
        (["--dataset", "breast-cancer"], "slipway"),
        (["--dataset", "penguins"], "slipway-penguins"),
    ],
)
def test_dataset_names_the_model_served(
    argv: list[str], model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    monkeypatch.setattr(
        "slipway.serving.server.run_server",
        lambda settings, *args: seen.append(settings),
    )
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SLIPWAY_PROJECT_DIR", str(PROJECT))
    monkeypatch.delenv("SLIPWAY_MODEL_NAME", raising=False)
    monkeypatch.setenv("SLIPWAY_MODEL_VERSION", "v3-20260101-0a1b2c3d")
    serve(*argv)
    assert [s.model_name for s in seen] == [model]
    assert seen[0].as_env()["SLIPWAY_MODEL_NAME"] == model  # what the workers rebuild


def test_unknown_dataset_is_one_sentence_naming_the_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("slipway.serving.server.run_server", lambda *args: pytest.fail("served"))
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SLIPWAY_PROJECT_DIR", str(PROJECT))
    monkeypatch.setenv("SLIPWAY_MODEL_VERSION", "v3-20260101-0a1b2c3d")
    result = CliRunner().invoke(cli, ["serve", "--dataset", "pengiuns"])
    assert result.exit_code == 1
    assert "unknown dataset 'pengiuns'" in result.output
    assert "breast-cancer, diamonds, penguins" in result.output


def test_invalid_limit_is_refused(started: list[ServingLimits]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--max-body-bytes", "0"])
    assert result.exit_code == 2
    assert "max-body-bytes" in result.output
    assert started == []


def test_workers_rebuild_the_limits_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from slipway.serving.server import app_from_environment
    from tests.support.serving import VERSION, install_package, package_files

    install_package(tmp_path / "efs", package_files())
    monkeypatch.setenv("SLIPWAY_EFS_ROOT", str(tmp_path / "efs"))
    monkeypatch.setenv("SLIPWAY_MODEL_VERSION", VERSION)
    limits = ServingLimits(max_batch_rows=5, max_concurrency=2, max_body_bytes=777)
    for name, value in limits_to_env(limits).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with TestClient(app_from_environment()) as client:  # loads in the background
        response = client.post(  # waits for the load, then reads the body
            "/v2/models/slipway/infer",
            content=b"{" + b" " * 800 + b"}",
            headers={"content-type": "application/json"},
        )
        metadata = client.get("/v2/models/slipway").json()
    assert response.status_code == 413
    assert response.json() == {"error": "request bodies are limited to 777 bytes"}
    assert metadata["parameters"]["max_batch_rows"] == 5


def test_timeouts_option_and_environment(
    started: list[ServingLimits], monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway.serving.limits import limits_from_env

    assert ServingLimits().body_timeout_seconds == 10.0
    assert ServingLimits().header_timeout_seconds == 10.0
    monkeypatch.setenv("SLIPWAY_SERVE_HEADER_TIMEOUT_SECONDS", "2.5")
    serve("--body-timeout-seconds", "1.5")
    assert (started[-1].body_timeout_seconds, started[-1].header_timeout_seconds) == (1.5, 2.5)
    env = limits_to_env(started[-1])
    assert limits_from_env(env) == started[-1]  # what the workers rebuild
    result = CliRunner().invoke(cli, ["serve", "--body-timeout-seconds", "0"])
    assert result.exit_code == 2
