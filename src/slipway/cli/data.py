"""``slipway data …``: write, track and push the dataset versions; list them."""

from __future__ import annotations

import typer
from rich.table import Table

from slipway.cli.common import console, fails_cleanly

app = typer.Typer(help="Dataset versions under DVC.", no_args_is_help=True)


@app.command("seed")
@fails_cleanly
def seed() -> None:
    """Write every dataset version to data/, track it with DVC and push it to the remote."""
    from slipway.config import load_settings
    from slipway.data import seed_datasets

    settings = load_settings()
    with console.status(f"seeding datasets into DVC remote {settings.dvc_remote_url} …"):
        refs = seed_datasets(
            settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url
        )
    _print_refs(refs, f"pushed to {settings.dvc_remote_url}")


@app.command("push")
@fails_cleanly
def push() -> None:
    """Push the tracked dataset versions to the configured DVC remote (folder or s3://)."""
    from slipway.config import load_settings
    from slipway.data import push_datasets

    settings = load_settings()
    with console.status(f"pushing datasets to {settings.dvc_remote_url} …"):
        count = push_datasets(
            settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url
        )
    console.print(f"pushed {count} file(s) to {settings.dvc_remote_url}")


@app.command("list")
@fails_cleanly
def list_versions() -> None:
    """The dataset versions, their DVC hashes and whether the remote holds them."""
    from slipway.config import load_settings
    from slipway.data import DATASET_VERSIONS, unpushed_datasets

    settings = load_settings()
    missing = set(
        unpushed_datasets(settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url)
    )
    table = Table("version", "path", "description", "on remote")
    for spec in DATASET_VERSIONS.values():
        table.add_row(
            spec.version,
            spec.path.as_posix(),
            spec.description,
            "no" if spec.path.as_posix() in missing else "yes",
        )
    console.print(table)


def _print_refs(refs, title: str) -> None:
    table = Table("version", "path", "DVC md5", title=title)
    for ref in refs:
        table.add_row(ref.version, ref.path, ref.md5)
    console.print(table)
