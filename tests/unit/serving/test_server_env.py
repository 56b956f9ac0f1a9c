"""``run_server`` sets the worker environment while it serves, and restores it after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_run_server_restores_the_environment(tmp_path: Path, monkeypatch) -> None:
    import uvicorn

    from slipway.config import load_settings
    from slipway.serving import ServingLimits
    from slipway.serving.server import MULTIPROC_ENV, run_server

    monkeypatch.setenv("SLIPWAY_MODEL_NAME", "before")
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    seen: dict[str, str] = {}

    def fake_run(*args, **kwargs) -> None:
        seen.update(os.environ)
        raise KeyboardInterrupt  # the server stopping is how run_server returns

    monkeypatch.setattr(uvicorn, "run", fake_run)
    settings = load_settings(state_dir=tmp_path, model_name="served")
    with pytest.raises(KeyboardInterrupt):
        run_server(settings, "127.0.0.1", 0, 1, ServingLimits(), str(tmp_path / "m"))
    assert seen["SLIPWAY_MODEL_NAME"] == "served"
    assert seen[MULTIPROC_ENV] == str(tmp_path / "m")
    assert os.environ["SLIPWAY_MODEL_NAME"] == "before"
    assert MULTIPROC_ENV not in os.environ
