"""VersionCode: parsed once, then a value that is its text wherever a string goes."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import date

import pytest

from slipway.config import load_settings
from slipway.errors import ConfigError
from slipway.versions import VersionCode, is_version_code, make_version_code

CODE = "v12-20261128-1f2e3d4c"


def test_parse_gives_the_parts_and_the_same_text() -> None:
    code = VersionCode.parse(CODE)
    assert (code.registry_version, code.promoted_on, code.run_prefix) == (
        12,
        date(2026, 11, 28),
        "1f2e3d4c",
    )
    assert code == CODE
    assert str(code) == CODE
    assert type(str(code)) is str
    assert json.dumps({"v": code}) == json.dumps({"v": CODE})
    assert VersionCode.parse(code) is code  # already parsed: returned as it is
    assert VersionCode(12, date(2026, 11, 28), "1f2e3d4c") == code


def test_a_code_survives_copy_and_pickle() -> None:
    code = VersionCode.parse(CODE)
    # pickled across processes (uvicorn workers, multiprocessing); our own bytes, not untrusted
    for copied in (copy.deepcopy(code), pickle.loads(pickle.dumps(code))):  # noqa: S301
        assert isinstance(copied, VersionCode)
        assert copied == code


@pytest.mark.parametrize("bad", ["", "v2-latest", f"{CODE}\n", None, 12])
def test_parse_refuses_what_is_not_a_code(bad: object) -> None:
    with pytest.raises(ConfigError, match="is not a model version code") as caught:
        VersionCode.parse(bad)
    assert repr(bad) in str(caught.value)
    assert "slipway models" not in str(caught.value)  # no such command
    assert not is_version_code(bad)


def test_parts_out_of_range_are_refused() -> None:
    with pytest.raises(ConfigError, match="registry version must be >= 1"):
        VersionCode(0, date(2026, 11, 28), "1f2e3d4c")
    with pytest.raises(ConfigError, match="8 lowercase hex"):
        VersionCode(1, date(2026, 11, 28), "1F2E3D4C")


def test_make_version_code_returns_a_code() -> None:
    code = make_version_code(3, "0a1b2c3d" * 4)
    assert isinstance(code, VersionCode)
    assert is_version_code(code)


def test_settings_parse_the_model_version_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_MODEL_VERSION", CODE)
    settings = load_settings()
    assert isinstance(settings.model_version, VersionCode)
    assert settings.model_version.registry_version == 12
    assert settings.as_env()["SLIPWAY_MODEL_VERSION"] == CODE
    assert type(settings.model_dump()["model_version"]) is str
    monkeypatch.delenv("SLIPWAY_MODEL_VERSION")
    assert load_settings().model_version is None
    with pytest.raises(
        ConfigError, match="SLIPWAY_MODEL_VERSION or MODEL_VERSION='v2-latest'"
    ) as caught:
        load_settings(model_version="v2-latest")
    assert "is not a model version code" in str(caught.value)


def test_the_pod_templates_model_version_env_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_MODEL_VERSION", raising=False)
    monkeypatch.setenv("MODEL_VERSION", CODE)  # what the overlay pins, once
    assert load_settings().model_version == CODE
    monkeypatch.setenv("SLIPWAY_MODEL_VERSION", "v1-20261128-0a1b2c3d")  # wins where both are set
    assert load_settings().model_version == "v1-20261128-0a1b2c3d"
    monkeypatch.setenv("MODEL_VERSION", "latest")
    monkeypatch.delenv("SLIPWAY_MODEL_VERSION")
    with pytest.raises(ConfigError, match="MODEL_VERSION='latest'"):
        load_settings()


def test_namespace_is_a_setting_with_a_default() -> None:
    assert load_settings().namespace == "slipway"
    assert load_settings(namespace="ml-prod").namespace == "ml-prod"
    with pytest.raises(ConfigError, match="SLIPWAY_NAMESPACE='Not_A_Name'"):
        load_settings(namespace="Not_A_Name")
