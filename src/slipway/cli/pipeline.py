"""``slipway compile`` and ``slipway run``: the training pipeline, compiled and run locally."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from slipway.cli.common import console, err_console, fails_cleanly, make_console

if TYPE_CHECKING:
    from slipway.config import Settings
    from slipway.orchestration import TaskStatus, TrainingRunResult

# how a finished task is marked, by TaskStatus value
_MARKS = {"succeeded": "[green]✓[/]", "failed": "[bold red]✗[/]", "skipped": "[dim]-[/]"}
LOG_TAIL_LINES = 20


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


def _pipelines_program(args: list[str]) -> int:
    """Run ``python -m pipelines`` (the compile step lives there, outside the library)."""
    from slipway.config import load_settings

    settings = load_settings()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", *args], cwd=settings.project_dir, check=False
    )
    return done.returncode


class _CompileCheck:
    """``python -m pipelines --check`` started in the background; :meth:`wait` for its verdict.

    Attributes:
        bytecode: where the check writes the modules it compiles when the state folder does not
            exist yet (a temporary folder that ``run_training`` moves into the state folder);
            ``None``: it writes to the state folder's cache directly.
    """

    def __init__(self, settings: Settings) -> None:
        import os
        import tempfile

        from slipway.orchestration.local_run import bytecode_cache

        self.bytecode = (
            None
            if settings.state_dir.is_dir()
            else Path(tempfile.mkdtemp(prefix="slipway-pycache-"))
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "--check"],
            cwd=settings.project_dir,
            env={**os.environ, **bytecode_cache(settings, self.bytecode)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait(self) -> int:
        """The check's exit code (0: the YAML is current); its error is printed otherwise."""
        _, stderr = self.process.communicate()
        if self.process.returncode:
            err_console.print(stderr.strip(), soft_wrap=True, markup=False)
        return self.process.returncode


@contextmanager
def _compile_check(settings: Settings) -> Iterator[_CompileCheck]:
    """The compile check for the block; stopped if still running, its temporary cache removed."""
    import shutil

    check = _CompileCheck(settings)
    try:
        yield check
    finally:
        if check.process.poll() is None:
            check.process.kill()
            check.process.communicate()
        if check.bytecode is not None:
            shutil.rmtree(check.bytecode, ignore_errors=True)


@fails_cleanly
def run_cmd(
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset name: its folder under data/ [default: breast-cancer]."),
    ] = None,
    dataset_version: Annotated[
        str | None,
        typer.Option(help="Readable dataset version, e.g. v1 or v2 [default: the latest]."),
    ] = None,
    dataset_rev: Annotated[str, typer.Option(help="Git revision of the DVC pointers.")] = "HEAD",
    params_file: Annotated[
        Path | None, typer.Option("--params", help="params.yaml to use instead of the project's.")
    ] = None,
    search_shards: Annotated[
        int,
        typer.Option(
            min=1,
            help="Split the grid search over this many search-shard tasks (docs/pipeline.md).",
        ),
    ] = 1,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show the tasks' logs as they run instead of in a log file."
        ),
    ] = False,
) -> None:
    """Run the compiled training pipeline end to end on this machine and print a summary.

    One line per task as it ends, then the summary; what the tasks print goes to
    ``<state_dir>/runs/<timestamp>/pipeline.log`` (or to the terminal with ``--verbose``).
    The params are the project's params.yaml with data/DATASET/params.yaml (if any) merged
    over it, unless --params names a whole file.
    """
    from slipway.config import load_settings
    from slipway.orchestration import gc_paused_in_imports, resolve_request, run_training
    from slipway.orchestration.local_run import bytecode_cached, preload_runner

    _exit_quickly()
    settings = load_settings()
    # the compile check (a program of its own, a few seconds) runs while this process validates
    # everything a user typed before the first side effect: the dataset and version exist at
    # dataset_rev, the spec is valid, the (merged) params are valid. Both compile into the
    # check's bytecode cache (the state folder's once it exists), which the tasks then read.
    # This process imports DVC, kfp and MLflow as it goes: without the collector (task_start).
    with (
        gc_paused_in_imports(),
        _compile_check(settings) as check,
        bytecode_cached(settings, check.bytecode),
    ):
        request = resolve_request(settings, dataset, dataset_version, dataset_rev, params_file)
        request = dataclasses.replace(request, search_shards=search_shards)
        preload_runner()
        if check.wait():
            raise typer.Exit(1)
        result = run_training(
            settings,
            request,
            _ConsoleProgress(settings),
            capture=not verbose,
            bytecode_from=check.bytecode,
        )
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
        logs = f" Task logs: {result.log}." if result.log else ""
        err_console.print(
            f"[bold red]pipeline failed:[/] {escape(str(result.failure))}.{escape(where)} "
            f"{outcome}{escape(logs)}",
            soft_wrap=True,
        )
        _print_failure_detail(result)
        raise typer.Exit(1)
    _print_summary(settings, result)


def _exit_quickly() -> None:
    """At this program's exit, freeze its heap before the teardown sweeps it (once per process).

    ``slipway run`` holds kfp, DVC, pandas and MLflow by its end, as a task does; see
    :mod:`slipway.orchestration.task_exit`. An ``atexit`` handler, so that a caller that runs
    the command in its own process (a test) keeps its collector until it exits too.
    """
    import atexit

    from slipway.orchestration import prepare_exit

    atexit.unregister(prepare_exit)
    atexit.register(prepare_exit)


def _print_failure_detail(result: TrainingRunResult) -> None:
    """The validation report of a run validate-data stopped, else the end of the task log."""
    if result.report is not None and result.report.is_file():
        err_console.print(result.report.read_text(), markup=False, soft_wrap=True)
    elif result.log is not None and result.log.is_file():
        tail = result.log.read_text(errors="replace").rstrip().splitlines()[-LOG_TAIL_LINES:]
        err_console.rule(f"last {len(tail)} lines of {result.log}")
        err_console.print("\n".join(tail), markup=False, soft_wrap=True)


class _ConsoleProgress:
    """:class:`slipway.orchestration.RunProgress` on the rich console: one line per task.

    While the task output is captured, a spinner shows the running task (on a terminal only) and
    each task prints one line when it ends, on the terminal stream the capture hands over.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.out: Console = console
        self.live: Progress | None = None
        self.rows: dict[str, TaskID] = {}

    @contextmanager
    def seeding(self, remote_url: str) -> Iterator[None]:
        doing = f"seeding the empty DVC remote {escape(remote_url)} …"
        if self.live is None:
            with self.out.status(doing):
                yield
        else:  # one live display at a time: the seeding is a row of the task spinner
            row = self.live.add_task(doing)
            try:
                yield
            finally:
                self.live.remove_task(row)
        self.out.print(f"seeded dataset versions into {escape(remote_url)}", soft_wrap=True)

    def starting(self, dataset_version: str, log: Path | None) -> None:
        console.rule(
            f"slipway-training: dataset {dataset_version} "
            f"({self.settings.compiled_pipeline.name}, state {self.settings.state_dir})"
        )
        if log is not None:
            console.print(f"task logs        {escape(str(log))}", soft_wrap=True)

    @contextmanager
    def running(self, terminal: TextIO | None) -> Iterator[None]:
        # live (--verbose): the tasks print to stdout themselves, a spinner would garble them;
        # off a terminal a spinner only adds noise
        self.out = console if terminal is None else make_console(file=terminal)
        try:
            if terminal is None or not self.out.is_terminal:
                yield
            else:
                self.live = task_spinner(self.out)
                with self.live:
                    yield
        finally:
            self.out, self.live, self.rows = console, None, {}

    def task_started(self, task: str) -> None:
        if self.live is not None:
            self.rows[task] = self.live.add_task(escape(task))

    def task_finished(self, task: str, status: TaskStatus, seconds: float) -> None:
        if self.live is not None and task in self.rows:
            self.live.remove_task(self.rows.pop(task))
        self.out.print(task_line(task, status, seconds))


def task_spinner(out: Console) -> Progress:
    """The running tasks with their elapsed time; gone when done, nothing off a terminal.

    It must not redirect ``sys.stdout``: that is the task log while the tasks run.
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def task_line(task: str, status: TaskStatus, seconds: float) -> str:
    """One task's line (rich markup), e.g. ``✓ search  12.3 s``."""
    took = "skipped" if status == "skipped" else f"{seconds:6.1f} s"
    return f"{_MARKS[status]} {escape(task):<16} {took}"


#: the binary metrics first, in this order; any other holdout metric (multiclass, regression) after
_METRIC_ORDER = ("roc_auc", "f1", "precision", "recall", "accuracy", "log_loss")


def _holdout_metric_names(metrics: dict) -> list[str]:
    """The candidate's holdout metric names, known ones in :data:`_METRIC_ORDER` first."""
    logged = {k.removeprefix("holdout_") for k in metrics if k.startswith("holdout_")} - {"rows"}
    first = [name for name in _METRIC_ORDER if name in logged]
    return first + sorted(logged - set(first)) if logged else list(_METRIC_ORDER)


def _print_summary(settings: Settings, result: TrainingRunResult) -> None:
    run = result.summary or {}
    tags, metrics, params = run["tags"], run["metrics"], run["params"]
    promoted = tags.get("slipway.promoted") == "true"
    console.rule("summary")
    console.print(
        f"dataset version  {tags.get('slipway.dataset_version')}@{tags.get('slipway.dataset_md5', '')[:8]}"
        f"  ({tags.get('slipway.dataset_path')}, md5 {tags.get('slipway.dataset_md5')})"
    )
    console.print(f"model            {tags.get('slipway.model_name')}")
    best = {k.removeprefix("best."): v for k, v in params.items() if k.startswith("best.")}
    console.print(f"best parameters  {json.dumps(best)}")
    rows = metrics.get("holdout_rows")
    table = Table(
        "holdout metric" if rows is None else f"holdout metric ({rows:.0f} rows)",
        "candidate",
        "champion",
    )
    for name in _holdout_metric_names(metrics):
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
    if result.html_report is not None:
        console.print(f"run report       {escape(str(result.html_report))}", soft_wrap=True)
    console.print(f"finished in {result.seconds:.1f} s")
