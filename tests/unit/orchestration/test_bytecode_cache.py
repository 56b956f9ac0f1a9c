"""The local run's bytecode cache: in the state folder, for the tasks and for ``slipway run``."""

import sys

from slipway.config import load_settings
from slipway.orchestration.local_run import adopt_bytecode, bytecode_cache, bytecode_cached


def test_tasks_get_a_cache_under_the_state_folder_and_may_write_it(tmp_path):
    settings = load_settings(state_dir=tmp_path / "state")
    env = bytecode_cache(settings)
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "state" / "pycache")
    assert env["PYTHONDONTWRITEBYTECODE"] == ""  # empty: Python writes .pyc files


def test_the_run_itself_uses_it_for_the_block_only(tmp_path):
    settings = load_settings(state_dir=tmp_path / "state")
    settings.state_dir.mkdir()
    before = sys.pycache_prefix, sys.dont_write_bytecode
    module = tmp_path / "src" / "slipway_probe_module.py"
    module.parent.mkdir()
    module.write_text("VALUE = 3\n")
    sys.path.insert(0, str(module.parent))
    try:
        with bytecode_cached(settings):
            assert sys.pycache_prefix == str(tmp_path / "state" / "pycache")
            assert sys.dont_write_bytecode is False
            import slipway_probe_module

            assert slipway_probe_module.VALUE == 3
    finally:
        sys.path.remove(str(module.parent))
        sys.modules.pop("slipway_probe_module", None)
    assert (sys.pycache_prefix, sys.dont_write_bytecode) == before
    cached = list((tmp_path / "state" / "pycache").rglob("slipway_probe_module*.pyc"))
    assert len(cached) == 1
    assert not (module.parent / "__pycache__").exists()  # nothing beside the source


def test_without_a_state_folder_the_run_creates_none(tmp_path):
    settings = load_settings(state_dir=tmp_path / "fresh")
    before = sys.pycache_prefix, sys.dont_write_bytecode
    with bytecode_cached(settings):
        assert (sys.pycache_prefix, sys.dont_write_bytecode) == before
    assert not (tmp_path / "fresh").exists()


def test_a_cache_written_before_the_state_folder_is_moved_into_it(tmp_path):
    settings = load_settings(state_dir=tmp_path / "state")
    early = tmp_path / "early"
    assert bytecode_cache(settings, early)["PYTHONPYCACHEPREFIX"] == str(early)
    (early / "work" / "src").mkdir(parents=True)
    (early / "work" / "src" / "a.cpython-311.pyc").write_bytes(b"a")
    settings.state_dir.mkdir()
    adopt_bytecode(settings, early)
    assert (
        settings.state_dir / "pycache" / "work" / "src" / "a.cpython-311.pyc"
    ).read_bytes() == b"a"
    assert not early.exists()


def test_a_cache_moved_into_an_existing_one_keeps_both(tmp_path):
    settings = load_settings(state_dir=tmp_path / "state")
    kept = settings.state_dir / "pycache" / "src" / "kept.pyc"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"kept")
    early = tmp_path / "early"
    (early / "src").mkdir(parents=True)
    (early / "src" / "new.pyc").write_bytes(b"new")
    adopt_bytecode(settings, early)
    assert kept.read_bytes() == b"kept"
    assert (kept.parent / "new.pyc").read_bytes() == b"new"
    assert not early.exists()
    adopt_bytecode(settings, early)  # nothing left to move: nothing happens
    assert sorted(p.name for p in kept.parent.iterdir()) == ["kept.pyc", "new.pyc"]


def test_before_the_state_folder_a_given_cache_takes_its_place(tmp_path):
    settings = load_settings(state_dir=tmp_path / "fresh")
    before = sys.pycache_prefix, sys.dont_write_bytecode
    with bytecode_cached(settings, tmp_path / "early"):
        assert (sys.pycache_prefix, sys.dont_write_bytecode) == (str(tmp_path / "early"), False)
    assert (sys.pycache_prefix, sys.dont_write_bytecode) == before
    assert not (tmp_path / "fresh").exists()
