"""The end of a task: garbage collected once, the rest left to the process's exit."""

import subprocess
import sys
import textwrap

from slipway.orchestration import prepare_exit
from tests.support.gc_probes import NOTED

PROBE = NOTED + textwrap.dedent(
    """
    import atexit

    Noted("garbage")  # unreachable before the call: collected by it
    kept = Noted("kept")  # alive at the call: left for the exit
    atexit.register(lambda: sys.stdout.write("atexit ran\\n"))
    from slipway.orchestration import prepare_exit
    frozen = prepare_exit()
    sys.stdout.write(f"frozen {frozen > 0} counted {gc.get_freeze_count() == frozen}\\n")
    Noted("later")  # allocated after the call: collected as usual
    gc.collect()
    sys.stdout.flush()
    """
)


def test_garbage_before_the_call_is_collected_and_the_exit_still_runs_atexit():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "freed garbage"
    assert lines[1] == "frozen True counted True"
    assert lines[2] == "freed later"
    assert "atexit ran" in lines[3:]


def test_it_returns_how_many_objects_it_froze():
    import gc

    try:
        frozen = prepare_exit()
        # frozen objects can still be freed by reference counting (a temporary of the call, or
        # another thread's) before the count is read again: never more, a few less at most
        assert frozen > 1000
        assert frozen * 0.99 <= gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()  # this is pytest's process: give the collector its heap back
