"""The shared EFS logic on a local store (the embedded default): verified copy, atomic rename,
immutability on EFS, retention that spares the champion, the champion marker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from slipway.config import load_settings
from slipway.errors import ConfigError, ModelPackageError, VersionExistsError
from slipway.packaging import efs
from slipway.packaging.efs import (
    apply_retention,
    publish_champion,
    read_champion_marker,
    sync_from_store,
    write_champion_marker,
)
from slipway.packaging.store import LocalModelStore
from tests.support.aws import fake_package

MODEL = "slipway"
V1 = "v1-20261128-0123abcd"


def _code(n: int) -> str:
    return f"v{n}-20261128-0123abcd"


@pytest.fixture
def setup(tmp_path: Path):
    store = LocalModelStore(tmp_path / "store")
    settings = load_settings(state_dir=tmp_path, git_commit="test")
    return store, settings


def test_sync_copies_a_verified_package_and_is_idempotent(setup) -> None:
    store, settings = setup
    store.put_package(MODEL, V1, fake_package(MODEL, V1))
    first = sync_from_store(store, MODEL, V1, settings)
    assert first.path == str(settings.efs_root / MODEL / V1)
    assert first.created is True
    again = sync_from_store(store, MODEL, V1, settings)
    assert again.created is False
    target = Path(first.path)
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "model.skops"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert oct((target / "model.skops").stat().st_mode & 0o777) == "0o644"


def test_a_different_package_under_the_same_code_on_efs_is_refused(setup) -> None:
    store, settings = setup
    store.put_package(MODEL, V1, fake_package(MODEL, V1))
    sync_from_store(store, MODEL, V1, settings)
    other = fake_package(MODEL, V1, b"another model")
    with pytest.raises(VersionExistsError, match=V1):
        sync_from_store(store, MODEL, V1, settings, manifest=other["manifest.json"])
    assert (settings.efs_root / MODEL / V1 / "manifest.json").read_bytes() == fake_package(
        MODEL, V1
    )["manifest.json"]


@pytest.mark.parametrize("names", [["../escape"], ["sub/dir"], [".hidden"], ["manifest.json"], []])
def test_manifest_file_names_cannot_escape_the_version_folder(setup, names) -> None:
    store, settings = setup
    manifest = {
        "format": 1,
        "model_name": MODEL,
        "version_code": V1,
        "files": {n: {"sha256": "0" * 64, "size": 1} for n in names},
    }
    with pytest.raises(ModelPackageError, match="lists no valid files"):
        sync_from_store(store, MODEL, V1, settings, manifest=json.dumps(manifest).encode())
    assert not (settings.efs_root / MODEL).exists() or not any(
        (settings.efs_root / MODEL).iterdir()
    )


def test_manifest_for_another_version_is_refused(setup) -> None:
    store, settings = setup
    store.put_package(MODEL, V1, fake_package(MODEL, V1))
    wrong = fake_package(MODEL, _code(2))["manifest.json"]
    with pytest.raises(ModelPackageError, match="not slipway v1"):
        sync_from_store(store, MODEL, V1, settings, manifest=wrong)


def test_bad_model_or_version_names_are_refused(setup) -> None:
    store, settings = setup
    with pytest.raises(ModelPackageError, match="not a model name"):
        sync_from_store(store, "../etc", V1, settings, manifest=b"{}")
    with pytest.raises(ConfigError, match="version code"):
        sync_from_store(store, MODEL, "..", settings, manifest=b"{}")


def test_retention_never_goes_below_the_revision_history_limit(tmp_path: Path) -> None:
    base = tmp_path / MODEL
    for n in range(1, 13):
        (base / _code(n)).mkdir(parents=True)
    assert apply_retention(tmp_path, MODEL, keep=1, champion=_code(12)) == [_code(2), _code(1)]
    assert sorted(p.name for p in base.iterdir()) == sorted(_code(n) for n in range(3, 13))


def test_retention_orders_by_registry_version_not_by_text(tmp_path: Path) -> None:
    base = tmp_path / MODEL
    for n in (2, 9, 10, 11, 12, 13, 14, 15, 16, 17, 100):
        (base / _code(n)).mkdir(parents=True)
    # as text "v100" < "v2"; by number v2 is the oldest
    assert apply_retention(tmp_path, MODEL, keep=10, champion=_code(100)) == [_code(2)]


def test_retention_keeps_an_old_champion_and_deletes_nothing_without_one(tmp_path: Path) -> None:
    base = tmp_path / MODEL
    for n in range(1, 14):
        (base / _code(n)).mkdir(parents=True)
    assert apply_retention(tmp_path, MODEL, keep=10, champion=None) == []
    assert apply_retention(tmp_path, MODEL, keep=10, champion=_code(1)) == [_code(3), _code(2)]
    assert (base / _code(1)).is_dir()


def test_retention_removes_stale_temporary_folders_only(tmp_path: Path) -> None:
    base = tmp_path / MODEL
    stale, fresh = base / f"{efs.TMP_PREFIX}{V1}.old", base / f"{efs.TMP_PREFIX}{V1}.new"
    stale.mkdir(parents=True)
    fresh.mkdir()
    old = time.time() - efs.STALE_SECONDS - 10
    os.utime(stale, (old, old))
    apply_retention(tmp_path, MODEL, keep=10, champion=None)
    assert not stale.exists()
    assert fresh.exists()


def test_champion_marker_round_trip_and_malformed_marker(setup) -> None:
    store, _ = setup
    assert read_champion_marker(store, MODEL) is None
    path = write_champion_marker(store, MODEL, V1, 1)
    assert json.loads(Path(path).read_text())["version_code"] == V1
    assert read_champion_marker(store, MODEL) == V1
    Path(path).write_text("{not json")
    assert read_champion_marker(store, MODEL) is None


def test_publish_champion_on_a_local_store_writes_marker_and_efs(setup) -> None:
    store, settings = setup
    store.put_package(MODEL, V1, fake_package(MODEL, V1))
    path = publish_champion(store, MODEL, V1, 1, settings)
    assert path == str(settings.efs_root / MODEL / V1)
    assert read_champion_marker(store, MODEL) == V1
    assert publish_champion(store, MODEL, V1, 1, settings) == path  # idempotent
