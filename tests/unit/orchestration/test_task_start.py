"""The start of a task: imports run with the collector off, everything else as before."""

import gc
import subprocess
import sys
import textwrap

import pytest

from slipway.orchestration import gc_paused_in_imports, pause_gc_in_imports
from slipway.orchestration.task_start import restore_imports


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A folder on sys.path whose modules note whether the collector was on as they ran."""
    (tmp_path / "probe_outer.py").write_text(
        "import gc\nimport probe_inner\nON = gc.isenabled()\nINNER = probe_inner.ON\n"
    )
    (tmp_path / "probe_inner.py").write_text("import gc\nON = gc.isenabled()\n")
    (tmp_path / "probe_broken.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("probe_outer", "probe_inner", "probe_broken"):
        sys.modules.pop(name, None)


@pytest.fixture
def paused():
    assert gc.isenabled()
    assert pause_gc_in_imports()
    try:
        yield
    finally:
        restore_imports()
        gc.enable()


def test_an_import_and_the_imports_within_it_run_with_the_collector_off(modules, paused):
    import probe_outer

    assert probe_outer.ON is False
    assert probe_outer.INNER is False
    assert gc.isenabled()  # back on once the import returned


def test_without_it_imports_run_with_the_collector_on(modules):
    import probe_outer

    assert probe_outer.ON is True
    assert probe_outer.INNER is True


def test_an_import_that_raises_turns_the_collector_back_on(modules, paused):
    with pytest.raises(RuntimeError, match="broken at import"):
        import probe_broken  # noqa: F401

    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off(modules, paused):
    gc.disable()
    import probe_outer

    assert probe_outer.ON is False
    assert not gc.isenabled()


def test_installing_twice_changes_nothing(paused):
    import builtins

    installed = builtins.__import__
    assert pause_gc_in_imports() is False
    assert builtins.__import__ is installed


def test_restoring_gives_back_the_original_import():
    import builtins

    original = builtins.__import__
    pause_gc_in_imports()
    assert builtins.__import__ is not original
    restore_imports()
    assert builtins.__import__ is original


def test_the_block_form_undoes_what_it_installed(modules):
    import builtins

    original = builtins.__import__
    with gc_paused_in_imports():
        import probe_outer

        assert builtins.__import__ is not original
    assert builtins.__import__ is original
    assert probe_outer.ON is False


def test_the_block_form_leaves_an_earlier_pause_in_place(paused):
    import builtins

    installed = builtins.__import__
    with gc_paused_in_imports():
        pass
    assert builtins.__import__ is installed


PROBE = textwrap.dedent(
    """
    import gc, sys
    from slipway.orchestration import gc_paused_in_imports, pause_gc_in_imports
    pause_gc_in_imports()
    before = sum(s["collections"] for s in gc.get_stats())
    import pandas, sklearn.tree  # hundreds of thousands of objects
    during = sum(s["collections"] for s in gc.get_stats()) - before
    garbage = [[] for _ in range(50)]
    for a in garbage:
        a.append(a)  # cycles: only the collector frees them
    del garbage, a
    collected = gc.collect()
    sys.stdout.write(f"{during} {collected >= 50} {gc.isenabled()}\\n")
    """
)


def test_in_a_task_the_imports_trigger_no_collection_and_the_collector_still_runs():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    during, collected, enabled = done.stdout.split()
    # without the pause these imports trigger hundreds of collections (the first one after
    # the imports may come from the import's own bookkeeping, never more than a handful)
    assert int(during) <= 2
    assert collected == "True"
    assert enabled == "True"
