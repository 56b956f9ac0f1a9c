"""What every command shares: settings, the console, and turning errors into exit codes."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TextIO

import typer
from rich.console import Console

from slipway.errors import SlipwayError


def make_console(file: TextIO | None = None, stderr: bool = False) -> Console:
    """A console that writes plain text unless it is on a terminal, and never colours on NO_COLOR.

    rich already leaves out every escape code when the stream is not a terminal; on a terminal
    with ``NO_COLOR`` set it would still write bold and italics, so styles are off altogether.

    Args:
        file: where to write (default: ``sys.stdout`` or ``sys.stderr`` when printing).
        stderr: write to ``sys.stderr`` when ``file`` is ``None``.
    """
    plain = os.environ.get("NO_COLOR", "") != ""
    return Console(
        file=file, stderr=stderr, highlight=False, color_system=None if plain else "auto"
    )


console = make_console()
err_console = make_console(stderr=True)


def fails_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a :class:`SlipwayError` as one red sentence and exit 1, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SlipwayError as e:
            err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
            report = getattr(e, "report", "")
            if report:
                err_console.print(report, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
