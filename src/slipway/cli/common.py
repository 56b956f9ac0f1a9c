"""What every command shares: settings, the console, and turning errors into exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from slipway.errors import SlipwayError

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


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
