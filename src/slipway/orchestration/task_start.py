"""The start of a task: its imports run without the cyclic garbage collector.

A KFP task is a new interpreter, and most of a short task is its imports: pandas,
scikit-learn, skops, MLflow and its SQL store, matplotlib, about 660,000 objects for evaluate.
CPython's collector runs every 700 allocations and, as the heap grows, over the whole heap:
~960 collections, 7 of them full, during those imports, about a quarter of their time (1.0 of
4.1 s for evaluate's imports on this machine; docs/pipeline.md, "Where a local run's time
goes"). An import keeps nearly all it allocates (module objects, classes, functions), so
those collections find almost nothing to free.

:func:`pause_gc_in_imports` makes every ``import`` statement run with the collector off and
turns it back on when the import returns or raises. Between imports, which is where the
task's work is, the collector runs exactly as before, with its default thresholds; the
garbage an import left is collected by the first collection after it. Nothing a task
computes, writes or records changes. :mod:`task_exit` is the other end of a task.
"""

from __future__ import annotations

import builtins
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_IMPORT: Callable[..., Any] | None = None  # ``builtins.__import__`` as it was, once replaced


def _without_gc(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (an ``__import__``) with the collector off for the outermost import."""

    def import_without_gc(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():  # an import within an import, or the caller turned it off
            return original(*args, **kwargs)
        gc.disable()
        try:
            return original(*args, **kwargs)
        finally:
            gc.enable()

    return import_without_gc


def pause_gc_in_imports() -> bool:
    """From now on in this process, the collector is off while an ``import`` statement runs.

    Call it first in a task (a component function) or a program of the local run; calling it
    again changes nothing. ``importlib.import_module`` calls made outside an ``import``
    statement are not covered. Code that turns the collector off itself keeps it off: an
    import started while it is off leaves it off (an import in another thread that started
    before may still turn it back on when it returns).

    Returns:
        Whether this call installed it (``False``: it already was).
    """
    global _IMPORT
    if _IMPORT is not None:
        return False
    _IMPORT = builtins.__import__
    builtins.__import__ = _without_gc(_IMPORT)
    return True


@contextmanager
def gc_paused_in_imports() -> Iterator[None]:
    """:func:`pause_gc_in_imports` for the block only, undone at its end if it installed it.

    For a command that may run inside another program (``slipway run`` under a test's
    ``CliRunner``): the caller's process gets its ``__import__`` back.
    """
    installed = pause_gc_in_imports()
    try:
        yield
    finally:
        if installed:
            restore_imports()


def restore_imports() -> None:
    """Undo :func:`pause_gc_in_imports` (the end of :func:`gc_paused_in_imports`, and tests)."""
    global _IMPORT
    if _IMPORT is not None:
        builtins.__import__ = _IMPORT
        _IMPORT = None
