"""Give memory that a step has freed back to the operating system, so its peak RSS is its data.

A step at 1,000,000 rows frees hundreds of MB (the table once its training or holdout rows are
copied out, each CV fold's copies) that the allocators keep for reuse instead of returning:

- glibc's ``malloc`` serves blocks below its mmap threshold from the heap, and raises that
  threshold up to 32 MB each time a big block is freed, so the per-column arrays (8 MB at a
  million rows) stay in the heap after they are freed;
- Arrow's memory pool (mimalloc or jemalloc), which holds a Parquet table's columns (pandas
  uses them without a copy), keeps its pages after the frame is gone.

:func:`bound_freed_memory` fixes glibc's threshold at 1 MB (blocks that big are mapped on their
own and unmapped when freed); :func:`release_free_memory` trims what the heaps and Arrow's pool
hold free; :func:`return_arrow_memory_at_once`, called before pyarrow loads, makes Arrow's
mimalloc give freed pages back at once (after a 1,000,000-row Parquet read it otherwise keeps
~20 MB that ``release_unused`` does not return). None of them changes any value a step computes.
Elsewhere than glibc the first two do nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's ``mallopt`` parameter for the mmap threshold (``M_MMAP_THRESHOLD`` in malloc.h)
_M_MMAP_THRESHOLD = -3
#: blocks of this many bytes or more get their own mapping (a 1,000-row float column is 8 kB)
MMAP_THRESHOLD = 1 << 20


def bound_freed_memory() -> bool:
    """Map blocks of :data:`MMAP_THRESHOLD` bytes or more on their own, for the whole process.

    Fixing the threshold also stops glibc from raising it, so a freed big array goes back to
    the system at once. Costs a page fault per page of each new big array, which the fits
    measured in docs/benchmarks.md do not show.

    Returns:
        Whether glibc took the setting (``False`` on another C library or platform).
    """
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


#: mimalloc's options (Arrow's default pool on Linux), read from the environment when pyarrow
#: loads: decommit freed memory at once rather than after a delay, and commit an arena's pages
#: as they are used rather than all at once
MIMALLOC_ENV = {"MIMALLOC_PURGE_DELAY": "0", "MIMALLOC_ARENA_EAGER_COMMIT": "0"}


def return_arrow_memory_at_once() -> bool:
    """Set :data:`MIMALLOC_ENV` for this process (and its children) before pyarrow loads.

    mimalloc reads its options once, when pyarrow (imported by pandas) loads, so a task calls
    this first, before it imports pandas. A variable the environment already sets is kept.
    A task's first read of a 1,000,000-row Parquet file is no slower (~1 s); a second read of it
    in the same process is ~0.6 s slower, as its pages are faulted in again.

    Returns:
        Whether the options can take effect: ``False`` when pyarrow is already imported (then
        nothing is set).
    """
    if "pyarrow" in sys.modules:
        return False
    for name, value in MIMALLOC_ENV.items():
        os.environ.setdefault(name, value)
    return True


def release_free_memory() -> None:
    """Return the free pages of glibc's heaps and of Arrow's memory pool to the system."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - musl and others lack these
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc
