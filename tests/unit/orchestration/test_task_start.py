"""The start of a task: imports run with the collector off, everything else as before."""

import gc
import subprocess
import sys
import textwrap

import pytest

from slipway.orchestration import gc_paused_in_imports, pause_gc_in_imports
from slipway.orchestration.task_start import restore_imports
from tests.support.gc_probes import NOTED


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


HELD = NOTED + textwrap.dedent(
    """
    from slipway.orchestration import pause_gc_in_imports, prepare_exit
    pause_gc_in_imports()
    import os  # loaded already: freezes nothing
    sys.stdout.write(f"frozen by a loaded module: {gc.get_freeze_count()}\\n")
    Noted("before a loaded module")
    import os
    gc.collect()  # the garbage left before that import is collected as usual
    import fractions  # loads modules: what the process holds waits for the end
    sys.stdout.write(f"frozen by new modules: {gc.get_freeze_count() > 1000}\\n")
    Noted("after new modules")  # allocated after the import: collected as usual
    gc.collect()
    held = Noted("held")
    import colorsys  # loads a module again: held is now frozen
    del held
    gc.collect()
    sys.stdout.write("collected during the work\\n")
    if sys.argv[1] == "prepare_exit":
        prepare_exit()  # hands it back first, then collects once
        sys.stdout.write("prepare_exit returned\\n")
        Noted("after prepare_exit")
        import wave  # freezes nothing any more
        gc.collect()
    sys.stdout.write("end of the task\\n")
    sys.stdout.flush()
    """
)


def test_an_import_that_loads_modules_leaves_them_to_the_end_and_prepare_exit_collects_all():
    done = subprocess.run(
        [sys.executable, "-c", HELD, "prepare_exit"], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == [
        "frozen by a loaded module: 0",
        "freed before a loaded module",
        "frozen by new modules: True",
        "freed after new modules",
        "collected during the work",  # held waits: it was alive when colorsys was imported
        "freed held",  # prepare_exit's one collection sees the whole heap, finalizers run
        "prepare_exit returned",
        "freed after prepare_exit",
        "end of the task",
    ]


def test_a_task_that_ends_without_prepare_exit_still_collects_what_imports_froze_at_exit():
    done = subprocess.run(
        [sys.executable, "-c", HELD, "raised"], capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[4:6] == ["collected during the work", "end of the task"]
    assert lines[6:] == ["freed held"]  # the interpreter's own collections at exit


def test_restoring_gives_the_collector_back_what_the_imports_froze(modules):
    pause_gc_in_imports()
    try:
        import probe_outer  # noqa: F401

        assert gc.get_freeze_count() > 0
    finally:
        restore_imports()
    assert gc.get_freeze_count() == 0
