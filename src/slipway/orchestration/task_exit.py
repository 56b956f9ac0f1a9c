"""The end of a task: its work is done and its interpreter exits next.

A KFP task is one interpreter that imports pandas, scikit-learn, skops, MLflow and more for one
call. When it exits, CPython's teardown clears every module and runs the cyclic garbage
collector over what is left, that is the whole heap of those imports: 0.3-1 s a task on this
machine (0.45 s for ``import sklearn.ensemble, pandas, mlflow, skops.io`` and nothing else),
paid five times a run. :func:`prepare_exit` collects the garbage once, as a collection at exit
would, then freezes what is alive (``gc.freeze``), so the teardown's collections skip it; the
operating system takes the memory back. What the task's imports froze (:mod:`task_start`) is
handed back to the collector first, so this one collection sees the whole heap and every
garbage object's finalizer runs, as at exit. Objects still freed by reference counting at
teardown are freed as before, ``atexit`` handlers and the joining of threads run as before,
and nothing the task wrote or recorded changes.
"""

from __future__ import annotations

import gc

from slipway.orchestration.task_start import release_frozen


def prepare_exit() -> int:
    """Collect garbage now, then keep the collector off what is alive until the process exits.

    Call it last in a task (a component function, after its work and its reports): anything
    the process allocates afterwards is collected as usual, and its imports freeze nothing
    more.

    Returns:
        How many objects the collector now leaves alone (``gc.get_freeze_count()``).
    """
    release_frozen()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
