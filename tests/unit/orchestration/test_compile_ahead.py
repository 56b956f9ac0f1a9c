"""The compile-ahead process: compiles what the tasks will import into their bytecode cache."""

import os
import time

import pytest

from slipway.config import load_settings
from slipway.orchestration.local_run import AHEAD_MODULES, CompileAhead, compiling_ahead

# waits (at most 20 s) until the program was told to write elsewhere, so that the next module
# is compiled into the new folder
WAITS_FOR_THE_MOVE = """
import sys, time
first = sys.pycache_prefix
deadline = time.monotonic() + 20
while sys.pycache_prefix == first and time.monotonic() < deadline:
    time.sleep(0.01)
"""


@pytest.fixture
def probes(tmp_path, monkeypatch):
    """A folder on the children's ``PYTHONPATH`` with a module, a package and a waiting module."""
    src = tmp_path / "src"
    (src / "probe_pkg" / "tests").mkdir(parents=True)
    (src / "probe_ahead_mod.py").write_text("VALUE = 1\n")
    (src / "probe_pkg" / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    (src / "probe_pkg" / "part.py").write_text("PART = 2\n")
    (src / "probe_pkg" / "tests" / "test_part.py").write_text("X = 3\n")
    (src / "probe_waits.py").write_text(WAITS_FOR_THE_MOVE)
    (src / "probe_after.py").write_text("AFTER = 4\n")
    monkeypatch.setenv("PYTHONPATH", str(src))
    return src


def _names(folder, src):
    """The modules under ``src`` compiled into ``folder`` (the stdlib's are there too)."""
    mirror = folder / src.relative_to(src.anchor)
    return sorted(p.name.split(".")[0] for p in mirror.rglob("*.pyc"))


def test_it_imports_modules_and_compiles_packages_into_the_folder_given(tmp_path, probes):
    settings = load_settings(state_dir=tmp_path / "state")
    folder = tmp_path / "cache"
    ahead = CompileAhead(settings, folder, ("probe_ahead_mod", "probe_pkg/", "no_such_module"))
    assert ahead.process.wait(timeout=60) == 0  # a module it cannot import is skipped
    # the package is compiled file by file, its tests left out, its __init__ never run
    assert _names(folder, probes) == ["__init__", "part", "probe_ahead_mod"]
    assert not (probes / "__pycache__").exists()  # nothing beside the sources
    assert not settings.state_dir.exists()  # a refused run must leave no state folder


def test_told_to_move_it_writes_the_rest_to_the_new_folder(tmp_path, probes):
    settings = load_settings(state_dir=tmp_path / "state")
    first, second = tmp_path / "first", tmp_path / "second"
    ahead = CompileAhead(settings, first, ("probe_ahead_mod", "probe_waits", "probe_after"))
    deadline = time.monotonic() + 30
    while "probe_waits" not in _names(first, probes) and time.monotonic() < deadline:
        time.sleep(0.02)  # compiled when it is first imported, before it starts waiting
    ahead.move_to(second)
    assert ahead.process.wait(timeout=60) == 0
    assert _names(first, probes) == ["probe_ahead_mod", "probe_waits"]
    assert _names(second, probes) == ["probe_after"]


def test_the_block_stops_it_whatever_happens(tmp_path, probes):
    (probes / "probe_forever.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    settings = load_settings(state_dir=tmp_path / "state")
    seen = {}

    def refused_run():
        with compiling_ahead(settings, tmp_path / "c", ("probe_forever",)) as ahead:
            seen["ahead"] = ahead
            time.sleep(0.2)
            seen["running"] = ahead.process.poll() is None  # on the module that never ends
            raise RuntimeError("the run was refused")

    with pytest.raises(RuntimeError, match="refused"):
        refused_run()
    ahead = seen["ahead"]
    assert seen["running"]
    assert ahead.process.returncode is not None  # killed and reaped
    ahead.move_to(tmp_path / "elsewhere")  # telling a stopped one does nothing
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities here")
def test_it_runs_below_this_process_priority(tmp_path, probes):
    (probes / "probe_forever.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    settings = load_settings(state_dir=tmp_path / "state")
    with compiling_ahead(settings, tmp_path / "c", ("probe_forever",)) as ahead:
        child = os.getpriority(os.PRIO_PROCESS, ahead.process.pid)
        assert child > os.getpriority(os.PRIO_PROCESS, 0)


def test_validate_datas_imports_come_first():
    assert AHEAD_MODULES.index("sklearn.tree") < AHEAD_MODULES.index("skops.io")
    assert AHEAD_MODULES.index("skops.io") < AHEAD_MODULES.index("skl2onnx")
