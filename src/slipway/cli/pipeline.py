"""``slipway compile`` and ``slipway run``: the training pipeline, compiled and run locally."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from slipway.cli.common import console, err_console, fails_cleanly

if TYPE_CHECKING:
    from slipway.config import Settings
    from slipway.orchestration import TrainingRunResult


def register(app: typer.Typer) -> None:
    """Add ``compile`` and ``run`` to the ``slipway`` app."""
    app.command("compile")(compile_cmd)
    app.command("run")(run_cmd)


@fails_cleanly
def compile_cmd(
    output: Annotated[Path | None, typer.Option(help="Where to write the YAML.")] = None,
    check: Annotated[bool, typer.Option(help="Fail if the committed YAML is out of date.")] = False,
) -> None:
    """Compile the training pipeline to pipelines/training_pipeline.yaml (committed)."""
    args = ["--check"] if check else []
    if output is not None:
        args += ["--output", str(output)]
    raise typer.Exit(_pipelines_program(args))


def _pipelines_program(args: list[str], capture: bool = False) -> int:
    """Run ``python -m pipelines`` (the compile step lives there, outside the library)."""
    from slipway.config import load_settings

    settings = load_settings()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=settings.project_dir,
        capture_output=capture,
        text=True,
        check=False,
    )
    if capture and done.returncode:
        err_console.print(done.stderr.strip(), soft_wrap=True, markup=False)
    return done.returncode


@fails_cleanly
def run_cmd(
    dataset_version: Annotated[
        str | None,
        typer.Option(help="Readable dataset version, e.g. v1 or v2 (default: the pipeline's)."),
    ] = None,
    dataset_rev: Annotated[str, typer.Option(help="Git revision of the DVC pointers.")] = "HEAD",
    params_file: Annotated[
        Path | None, typer.Option("--params", help="params.yaml to use instead of the project's.")
    ] = None,
) -> None:
    """Run the compiled training pipeline end to end on this machine and print a summary."""
    from slipway.config import load_settings
    from slipway.data import DEFAULT_DATASET_VERSION
    from slipway.orchestration import TrainingRequest, run_training
    from slipway.params import load_params

    settings = load_settings()
    # validate everything a user typed before the first side effect
    request = TrainingRequest(
        params=load_params(params_file or settings.params_file),
        dataset_version=dataset_version or DEFAULT_DATASET_VERSION,
        dataset_rev=dataset_rev,
    )
    if _pipelines_program(["--check"], capture=True):
        raise typer.Exit(1)
    result = run_training(settings, request, _ConsoleProgress(settings))
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    if result.failure is not None:
        where = f" Validation report: {result.report}." if result.report else ""
        outcome = (
            f"The champion alias moved from {result.champion_before} to {result.champion_after} "
            "before the failure: rerun `slipway run` (promotion is idempotent) to finish."
            if result.champion_moved
            else "Nothing was promoted: the champion is unchanged."
        )
        err_console.print(
            f"[bold red]pipeline failed:[/] {result.failure}.{where} {outcome}", soft_wrap=True
        )
        raise typer.Exit(1)
    _print_summary(settings, result)


class _ConsoleProgress:
    """:class:`slipway.orchestration.RunProgress` on the rich console."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextmanager
    def seeding(self, remote_url: str) -> Iterator[None]:
        with console.status(f"seeding the empty DVC remote {remote_url} …"):
            yield
        console.print(f"seeded dataset versions into {remote_url}")

    def starting(self, dataset_version: str) -> None:
        console.rule(
            f"slipway-training: dataset {dataset_version} "
            f"({self.settings.compiled_pipeline.name}, state {self.settings.state_dir})"
        )


def _print_summary(settings: Settings, result: TrainingRunResult) -> None:
    run = result.summary or {}
    tags, metrics, params = run["tags"], run["metrics"], run["params"]
    promoted = tags.get("slipway.promoted") == "true"
    console.rule("summary")
    console.print(
        f"dataset version  {tags.get('slipway.dataset_version')}@{tags.get('slipway.dataset_md5', '')[:8]}"
        f"  ({tags.get('slipway.dataset_path')}, md5 {tags.get('slipway.dataset_md5')})"
    )
    best = {k.removeprefix("best."): v for k, v in params.items() if k.startswith("best.")}
    console.print(f"best parameters  {json.dumps(best)}")
    table = Table("holdout metric", "candidate", "champion")
    for name in ("roc_auc", "f1", "precision", "recall", "accuracy", "log_loss"):
        champion = metrics.get(f"champion_holdout_{name}")
        table.add_row(
            name,
            f"{metrics.get(f'holdout_{name}', float('nan')):.4f}",
            "-" if champion is None else f"{champion:.4f}",
        )
    console.print(table)
    verdict = "[bold green]PROMOTED[/]" if promoted else "[bold yellow]NOT PROMOTED[/]"
    console.print(f"decision         {verdict}: {tags.get('slipway.decision_reason')}")
    console.print(f"champion before  {tags.get('slipway.champion_version')}")
    if promoted:
        console.print(
            f"version code     [bold]{tags.get('slipway.version_code')}[/] "
            f"(registry version {tags.get('slipway.registry_version')})"
        )
        console.print(f"model package    {tags.get('slipway.package_uri')}")
        if tags.get("slipway.efs_path"):
            console.print(f"on EFS           {tags.get('slipway.efs_path')}")
    console.print(f"MLflow run       {result.run_id}  (tracking {settings.tracking_uri})")
    console.print(f"finished in {result.seconds:.1f} s")
