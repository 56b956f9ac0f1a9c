"""What a local run's tasks print goes to a log file; their starts and ends become events.

``kfp.local`` prints each task's output (the subprocess's stdout and stderr, merged) and its own
records (task started, finished, outputs) on this process's ``sys.stdout``, through ``print``
and a root-logger handler it installs around each task. :func:`output_to` sends all of it to a
log file, at the file-descriptor level too, and hands back a stream to the terminal;
:class:`TaskWatcher` reads the task records into :class:`TaskEvents` calls.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TextIO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# kfp.local's records, once the colours are stripped: "Executing task 'search'" and
# "Task 'search' finished with status SUCCESS" (a failure raises instead, with raise_on_error)
_STARTED = re.compile(r"^Executing task '([^']+)'")
_FINISHED = re.compile(r"^Task '([^']+)' finished with status (\w+)")


class TaskStatus(StrEnum):
    """How a task of the pipeline ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class TaskEvents(Protocol):
    """What a display of the run's tasks is told, in order."""

    def task_started(self, task: str) -> None:
        """The task ``task`` (e.g. ``pull-data``) started."""
        ...

    def task_finished(self, task: str, status: TaskStatus, seconds: float) -> None:
        """The task ended with ``status`` after ``seconds`` (0 for a skipped task)."""
        ...


class TaskWatcher(logging.Filter):
    """Turns ``kfp.local``'s task records into :class:`TaskEvents` calls.

    A filter on the root logger, not a handler: ``kfp.local`` replaces the root handlers around
    every task but leaves its filters alone. It never drops a record.

    Args:
        events: told of every start and end.
        tasks: every task of the pipeline; those that never started are reported skipped.
        clock: seconds, monotonic (for the tests).
    """

    def __init__(
        self,
        events: TaskEvents,
        tasks: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.events = events
        self.tasks = tuple(tasks)
        self.clock = clock
        self.running: dict[str, float] = {}
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Read one record; always keep it."""
        message = ANSI.sub("", record.getMessage())
        if started := _STARTED.match(message):
            task = started[1]
            self.seen.add(task)
            self.running[task] = self.clock()
            self.events.task_started(task)
        elif finished := _FINISHED.match(message):
            ok = finished[2] == "SUCCESS"
            self._finish(finished[1], TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED)
        return True

    def close(self) -> None:
        """End of the pipeline: a task still running failed; a task never started was skipped."""
        for task in list(self.running):
            self._finish(task, TaskStatus.FAILED)
        for task in self.tasks:
            if task not in self.seen:
                self.seen.add(task)
                self.events.task_finished(task, TaskStatus.SKIPPED, 0.0)

    @contextmanager
    def watching(self) -> Iterator[TaskWatcher]:
        """Watch the root logger for the block, then :meth:`close`, even when the block fails."""
        root = logging.getLogger()
        root.addFilter(self)
        try:
            yield self
        finally:
            root.removeFilter(self)
            self.close()

    def _finish(self, task: str, status: TaskStatus) -> None:
        started = self.running.pop(task, None)
        seconds = 0.0 if started is None else self.clock() - started
        self.events.task_finished(task, status, seconds)


def executor_tasks(pipeline_spec: Any) -> list[str]:
    """The names of the tasks that run code, through every sub-DAG (conditions) of a pipeline.

    Args:
        pipeline_spec: the ``PipelineSpec`` of a loaded compiled pipeline.

    Returns:
        Task names as ``kfp.local`` logs them, e.g. ``["pull-data", ..., "promote"]``.
    """
    components = pipeline_spec.components

    def walk(dag: Any) -> Iterator[str]:
        for name, task in dag.tasks.items():
            component = components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                yield from walk(component.dag)
            else:
                yield name

    return list(walk(pipeline_spec.root.dag))


def new_run_log(state_dir: Path, now: datetime | None = None) -> Path:
    """A fresh ``runs/<timestamp>/pipeline.log`` path under ``state_dir`` (folder created).

    Args:
        state_dir: the state folder of the run.
        now: the run's start (default: now).

    Returns:
        The log path; its folder is new, so two runs never share a log.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    runs = state_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = runs / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder / "pipeline.log"
    raise FileExistsError(f"{runs / stamp}-*: 999 runs started this second; remove some")


class _Uncoloured(io.TextIOBase):
    """A text stream into ``log`` without ANSI escape codes (kfp.local colours its records)."""

    def __init__(self, log: TextIO) -> None:
        self.log = log

    def write(self, text: str) -> int:
        self.log.write(ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def fileno(self) -> int:
        return self.log.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.log.encoding


@contextmanager
def output_to(log_path: Path) -> Iterator[TextIO]:
    """Send everything this process and its children print to ``log_path`` for the block.

    File descriptors 1 and 2 (what subprocesses inherit) and ``sys.stdout``/``sys.stderr`` all
    point at the log; all are restored afterwards, even when the block raises.

    Args:
        log_path: appended to; created if missing.

    Yields:
        A stream to where ``sys.stdout`` went before the block (the terminal, or a test's
        capture), for the progress display.
    """
    saved_streams = sys.stdout, sys.stderr
    for stream in saved_streams:
        stream.flush()
    terminal, close_terminal = _stream_beside(sys.stdout)
    saved_fds = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(log_path, "a", encoding="utf-8", errors="replace", buffering=1) as log:
            for fd in saved_fds:
                os.dup2(log.fileno(), fd)
            sys.stdout = sys.stderr = _Uncoloured(log)  # type: ignore[assignment]
            try:
                yield terminal
            finally:
                sys.stdout.flush()
                sys.stdout, sys.stderr = saved_streams
    finally:
        for fd, copy in saved_fds.items():
            os.dup2(copy, fd)
            os.close(copy)
        if close_terminal:
            terminal.close()


def _stream_beside(stream: TextIO) -> tuple[TextIO, bool]:
    """A stream that keeps writing where ``stream`` does once fds 1 and 2 are redirected.

    Returns:
        ``(stream, must_close)``: a new file on a copy of the descriptor when ``stream`` writes
        to fd 1 or 2, else ``stream`` itself.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream, False
    if fd not in (1, 2):
        return stream, False
    encoding = getattr(stream, "encoding", None) or "utf-8"
    copy = os.fdopen(os.dup(fd), "w", encoding=encoding, errors="replace", buffering=1)
    return copy, True
