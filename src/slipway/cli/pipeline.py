"""``slipway compile`` and ``slipway run``: the training pipeline, compiled and run locally."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from slipway.cli.common import console, err_console, fails_cleanly


def register(app: typer.Typer) -> None:
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
    from slipway.data import DEFAULT_DATASET_VERSION, dataset_spec, seed_datasets, unpushed_datasets
    from slipway.errors import PipelineRunError
    from slipway.orchestration import run_compiled_pipeline
    from slipway.params import load_params

    settings = load_settings()
    # validate everything a user typed before the first side effect
    params = load_params(params_file or settings.params_file)
    dataset_version = dataset_version or DEFAULT_DATASET_VERSION
    dataset_spec(dataset_version)
    if _pipelines_program(["--check"], capture=True):
        raise typer.Exit(1)

    # seed only this checkout's own remote; another DVC project (SLIPWAY_DVC_REPO) owns its data
    own_project = Path(settings.dvc_repo).resolve() == settings.project_dir
    unpushed = own_project and unpushed_datasets(
        settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if unpushed:
        with console.status(f"seeding the empty DVC remote {settings.dvc_remote_url} …"):
            seed_datasets(settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url)
        console.print(f"seeded dataset versions into {settings.dvc_remote_url}")
    console.rule(
        f"slipway-training: dataset {dataset_version} ({settings.compiled_pipeline.name}, state {settings.state_dir})"
    )
    started = time.monotonic()
    champion_before = _champion_version(settings)
    started_at = time.time()
    arguments: dict[str, Any] = {
        "dataset_version": dataset_version,
        "dataset_rev": dataset_rev,
        "data_params": params.data.model_dump(),
        "search_params": params.search.model_dump(),
        "evaluate_params": params.evaluate.model_dump(),
    }
    try:
        run_id = run_compiled_pipeline(settings.compiled_pipeline, settings, arguments)
    except PipelineRunError as e:
        _push_run_metrics(settings, time.monotonic() - started, error=e)
        report = (
            _latest_report(settings.state_dir, since=started_at)
            if "validate-data" in str(e)
            else None
        )
        where = f" Validation report: {report}." if report else ""
        champion_after = _champion_version(settings)
        outcome = (
            "Nothing was promoted: the champion is unchanged."
            if champion_after == champion_before
            else f"The champion alias moved from {champion_before} to {champion_after} before the "
            "failure: rerun `slipway run` (promotion is idempotent) to finish."
        )
        err_console.print(f"[bold red]pipeline failed:[/] {e}.{where} {outcome}", soft_wrap=True)
        raise typer.Exit(1) from None
    _push_run_metrics(settings, time.monotonic() - started, run_id=run_id)
    _print_summary(settings, run_id, time.monotonic() - started)


def _push_run_metrics(
    settings: Any, seconds: float, run_id: str | None = None, error: Exception | None = None
) -> None:
    """Report the run to the Pushgateway when one is configured; never fails the run."""
    if not settings.pushgateway_url:
        return
    from slipway.orchestration import (
        PipelineRunMetrics,
        pipeline_run_from_summary,
        push_pipeline_metrics,
    )
    from slipway.training import run_summary

    try:
        if run_id:
            run = pipeline_run_from_summary(run_summary(settings.tracking_uri, run_id), seconds)
        else:  # kfp names the failed task in its error
            failed_validation = "'validate-data'" in str(error)
            run = PipelineRunMetrics(
                seconds, succeeded=False, data_validation_failed=failed_validation
            )
        pushed = push_pipeline_metrics(settings.pushgateway_url, run, model=settings.model_name)
    except Exception as e:  # metrics must never fail a run that worked
        err_console.print(f"[yellow]warning:[/] pipeline metrics not computed: {e}")
        return
    if not pushed:
        err_console.print(
            f"[yellow]warning:[/] pipeline metrics not pushed to {settings.pushgateway_url}"
        )


def _latest_report(state_dir: Path, since: float) -> Path | None:
    """This run's validation report (never an older run's)."""
    reports = sorted(
        (
            p
            for p in (state_dir / "kfp").glob("*/validate-data/report")
            if p.stat().st_mtime >= since
        ),
        key=lambda p: p.stat().st_mtime,
    )
    return reports[-1] if reports else None


def _champion_version(settings: Any) -> str | None:
    from slipway.registry import get_alias_version, get_client

    version = get_alias_version(get_client(settings.tracking_uri), settings.model_name)
    return None if version is None else str(version.version)


def _print_summary(settings: Any, run_id: str, seconds: float) -> None:
    from slipway.training import run_summary

    run = run_summary(settings.tracking_uri, run_id)
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
    console.print(f"MLflow run       {run_id}  (tracking {settings.tracking_uri})")
    console.print(f"finished in {seconds:.1f} s")
