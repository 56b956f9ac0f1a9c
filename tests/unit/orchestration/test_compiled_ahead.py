"""The later tasks' imports compiled ahead, in a background interpreter, into the tasks' cache."""

import os
import sys
import time

import pytest

from slipway.config import load_settings
from slipway.orchestration.local_run import (
    AHEAD_IMPORTS,
    bytecode_cached,
    compiled_ahead,
    module_compiled,
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A state folder, and modules on both this process's path and the background one's."""
    src = tmp_path / "src"
    (src / "probe_pkg").mkdir(parents=True)
    (src / "probe_pkg" / "__init__.py").write_text("")
    (src / "probe_pkg" / "sub.py").write_text("VALUE = 1\n")
    (src / "probe_flat.py").write_text("VALUE = 2\n")
    (src / "probe_broken.py").write_text("raise RuntimeError('broken at import')\n")
    (src / "probe_slow.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("PYTHONPATH", str(src))
    settings = load_settings(state_dir=tmp_path / "state")
    settings.state_dir.mkdir()
    with bytecode_cached(settings):
        yield settings
    for name in ("probe_pkg", "probe_pkg.sub", "probe_flat", "probe_broken", "probe_slow"):
        sys.modules.pop(name, None)


def test_it_compiles_what_is_missing_into_the_state_folder_and_then_nothing(project):
    assert not module_compiled("probe_pkg.sub")
    with compiled_ahead(project, ("probe_pkg.sub", "probe_flat")) as process:
        assert process is not None
        assert process.wait(timeout=60) == 0
    assert module_compiled("probe_pkg.sub")
    assert module_compiled("probe_flat")
    assert list((project.state_dir / "pycache").rglob("sub.*.pyc"))
    assert "probe_flat" not in sys.modules  # compiled there, not imported here
    with compiled_ahead(project, ("probe_pkg.sub", "probe_flat")) as again:
        assert again is None  # all compiled: no process


def test_a_module_that_fails_to_import_does_not_stop_the_others(project):
    with compiled_ahead(project, ("probe_broken", "probe_flat")) as process:
        assert process.wait(timeout=60) == 0
    assert module_compiled("probe_flat")


def test_it_runs_below_the_tasks_and_is_stopped_at_the_end_of_the_block(project):
    lower = min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)  # nice 10 below this process
    started = time.monotonic()
    with compiled_ahead(project, ("probe_slow",)) as process:
        deadline = time.monotonic() + 10
        while os.getpriority(os.PRIO_PROCESS, process.pid) != lower:
            assert time.monotonic() < deadline, "the background interpreter kept its priority"
            time.sleep(0.05)
    assert process.returncode is not None  # killed, not waited for
    assert time.monotonic() - started < 30


def test_a_module_that_is_not_installed_has_nothing_to_compile(project):
    assert module_compiled("slipway_no_such_package.sub")
    with compiled_ahead(project, ("slipway_no_such_package",)) as process:
        assert process is None


def test_the_later_tasks_imports_are_installed_python_packages():
    from importlib.util import find_spec

    for name in AHEAD_IMPORTS:
        spec = find_spec(name.partition(".")[0])
        assert spec is not None, name
        assert spec.origin.endswith("__init__.py"), name
