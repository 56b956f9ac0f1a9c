"""The local run's bytecode cache: in the state folder, for the tasks and for ``slipway run``."""

import sys

from slipway.config import load_settings
from slipway.orchestration.local_run import bytecode_cache, bytecode_cached


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
