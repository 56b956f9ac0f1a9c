"""The start of a task: its imports run without the cyclic garbage collector.

A KFP task is a new interpreter, and most of a short task is its imports: pandas,
scikit-learn, skops, MLflow and its SQL store, matplotlib, about 660,000 objects for evaluate.
CPython's collector runs every 700 allocations and, as the heap grows, over the whole heap:
~960 collections, 7 of them full, during those imports, about a quarter of their time (1.0 of
4.1 s for evaluate's imports on this machine; docs/pipeline.md, "Where a local run's time
goes"). An import keeps nearly all it allocates (module objects, classes, functions), so
those collections find almost nothing to free.

:func:`pause_gc_in_imports` makes every ``import`` statement run with the collector off and
turns it back on when the import returns or raises. An import that loaded modules then moves
what the process holds into the collector's permanent generation (``gc.freeze``), so that the
task's later collections, young and full, do not walk those modules' objects again and again
(0.45-0.65 s of collections in each of search, evaluate and promote before, 0.25-0.3 s
after, nearly all of it :func:`~slipway.orchestration.prepare_exit`'s; docs/pipeline.md).
Between imports, which is where the task's work is, the collector runs as before, with its
default thresholds, over everything allocated since. What was garbage, or became garbage, among the frozen objects (the cycles an import
leaves, a few thousand objects) waits for the end: :func:`release_frozen` hands it all back to
the collector, and :func:`slipway.orchestration.prepare_exit` calls it before its one
collection; if a task ends without that call (it raised), an ``atexit`` handler does, so the
interpreter's own collections at exit see everything, finalizers included. Nothing a task
computes, writes or records changes. :mod:`task_exit` is the other end of a task.
"""

from __future__ import annotations

import atexit
import builtins
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_IMPORT: Callable[..., Any] | None = None  # ``builtins.__import__`` as it was, once replaced
_FROZEN = False  # whether an import moved objects to the permanent generation since release
_RELEASED = False  # release_frozen ran: imports freeze nothing more in this process


def _without_gc(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (an ``__import__``) with the collector off for the outermost import.

    When that import loaded modules, what the process holds then is frozen (``gc.freeze``)
    until :func:`release_frozen`; an import of modules already loaded freezes nothing.
    """

    def import_without_gc(*args: Any, **kwargs: Any) -> Any:
        global _FROZEN
        if not gc.isenabled():  # an import within an import, or the caller turned it off
            return original(*args, **kwargs)
        gc.disable()
        loaded = len(sys.modules)
        try:
            return original(*args, **kwargs)
        finally:
            if len(sys.modules) != loaded and not _RELEASED:
                gc.freeze()
                _FROZEN = True
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
    global _IMPORT, _RELEASED
    if _IMPORT is not None:
        return False
    _IMPORT = builtins.__import__
    _RELEASED = False
    builtins.__import__ = _without_gc(_IMPORT)
    atexit.register(release_frozen)  # a task that never reaches prepare_exit (it raised)
    return True


def release_frozen() -> bool:
    """Give the collector back what the imports froze; later imports in this process freeze none.

    :func:`slipway.orchestration.prepare_exit` calls it before its collection;
    :func:`restore_imports` and, for a task that ends without ``prepare_exit``, an ``atexit``
    handler call it too. Calling it again changes nothing.

    Returns:
        Whether there was anything to give back.
    """
    global _FROZEN, _RELEASED
    _RELEASED = True
    if not _FROZEN:
        return False
    gc.unfreeze()
    _FROZEN = False
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
    """Undo :func:`pause_gc_in_imports` and :func:`release_frozen` what its imports froze.

    The end of :func:`gc_paused_in_imports`, and of tests.
    """
    global _IMPORT
    if _IMPORT is not None:
        release_frozen()
        builtins.__import__ = _IMPORT
        _IMPORT = None
        atexit.unregister(release_frozen)
