"""The ``slipway`` command line: one verb per job; the Makefile calls these.

Every command builds :class:`~slipway.config.Settings` once, validates its input before any side
effect, and turns a :class:`~slipway.errors.SlipwayError` into one sentence and exit code 1.
"""

from __future__ import annotations

import typer

from slipway.cli import data as data_cli
from slipway.cli import efs as efs_cli
from slipway.cli import guard as guard_cli
from slipway.cli import mirror as mirror_cli
from slipway.cli import pipeline as pipeline_cli
from slipway.cli import rollout as rollout_cli
from slipway.cli import serve as serve_cli
from slipway.cli import submit as submit_cli

__all__ = ["app", "main"]

app = typer.Typer(
    name="slipway",
    help="From a versioned dataset to a monitored, rollback-able model service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cli.app, name="data")
pipeline_cli.register(app)
rollout_cli.register(app)
mirror_cli.register(app)
submit_cli.register(app)
serve_cli.register(app)
efs_cli.register(app)
guard_cli.register(app)


def _mount_optional() -> None:
    """Sub-commands of other capabilities; each module owns its verbs."""
    from slipway.cli import alarms as alarms_cli

    app.add_typer(alarms_cli.app, name="alarms")


_mount_optional()


def main() -> None:
    """Run the ``slipway`` command (the console-script entry point)."""
    app()
