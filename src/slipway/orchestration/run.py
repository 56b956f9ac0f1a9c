"""One local training run as a library call: what ``slipway run`` does, without the printing.

:func:`run_training` seeds this checkout's DVC remote when it is empty, records the champion
before and after, runs the compiled pipeline under ``kfp.local`` (what its tasks print goes to
``<state_dir>/runs/<timestamp>/pipeline.log``; the progress hooks hear of each task) and finds the validation report of a run that validate-data stopped.
After a run that finished it writes the run's HTML report to ``<state_dir>/reports/<run id>.html``
(rendered from the MLflow run, :func:`slipway.training.write_run_report`).
It returns a :class:`TrainingRunResult`; the CLI prints it.

The run's KPIs reach the Pushgateway from the pipeline's own tasks
(:mod:`slipway.orchestration.step_metrics`, with ``SLIPWAY_PUSHGATEWAY_URL``), exactly as on
Kubeflow; this module does not push them again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from slipway.config import Settings
from slipway.errors import PipelineRunError
from slipway.orchestration.request import TrainingRequest
from slipway.orchestration.task_log import TaskEvents, TaskStatus

VALIDATE_TASK = "validate-data"


@dataclass(frozen=True)
class TrainingRunResult:
    """What one run did.

    Attributes:
        seconds: wall time of the run (from the first champion look-up to the last one).
        champion_before: registry version of the champion before the run (``None``: none).
        champion_after: registry version of the champion after the run.
        run_id: the MLflow run of the candidate; ``None`` when the pipeline failed.
        summary: :func:`slipway.training.run_summary` of that run; ``None`` on failure.
        failure: the error of the failed pipeline; ``None`` when it succeeded.
        report: this run's validation report when validate-data stopped the run.
        warnings: problems that did not fail the run (the tasks log their own, e.g. a push that
            failed, in the run log).
        log: the file holding what the tasks printed; ``None`` when they printed live.
        html_report: the run's HTML report, ``<state_dir>/reports/<run id>.html``; ``None`` when
            the pipeline failed.
    """

    seconds: float
    champion_before: str | None
    champion_after: str | None
    run_id: str | None = None
    summary: Mapping[str, Any] | None = None
    failure: PipelineRunError | None = None
    report: Path | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    log: Path | None = None
    html_report: Path | None = None

    @property
    def succeeded(self) -> bool:
        """Whether every task of the pipeline finished."""
        return self.failure is None

    @property
    def champion_moved(self) -> bool:
        """Whether the champion alias points elsewhere than before the run."""
        return self.champion_after != self.champion_before


class RunProgress(Protocol):
    """Hooks a caller implements to show progress (the CLI prints with rich)."""

    def seeding(self, remote_url: str) -> AbstractContextManager[None]:
        """Wraps seeding the empty DVC remote ``remote_url``."""
        ...

    def starting(self, dataset_version: str, log: Path | None) -> None:
        """Called before seeding and the pipeline; their output goes to ``log`` (or live).

        ``dataset_version`` names the data, e.g. ``penguins v1``.
        """
        ...

    def running(self, terminal: TextIO | None) -> AbstractContextManager[None]:
        """Wraps seeding and the pipeline; ``terminal``: where to write while output is captured.

        ``None``: the output is not captured (the tasks print live to stdout).
        """
        ...

    def task_started(self, task: str) -> None:
        """The task ``task`` (e.g. ``pull-data``) started."""
        ...

    def task_finished(self, task: str, status: TaskStatus, seconds: float) -> None:
        """The task ended with ``status`` after ``seconds`` (0 for a skipped task)."""
        ...


class _Quiet:
    @contextmanager
    def seeding(self, remote_url: str) -> Iterator[None]:
        yield

    def starting(self, dataset_version: str, log: Path | None) -> None:
        pass

    def running(self, terminal: TextIO | None) -> AbstractContextManager[None]:
        return nullcontext()

    def task_started(self, task: str) -> None:
        pass

    def task_finished(self, task: str, status: TaskStatus, seconds: float) -> None:
        pass


def run_training(
    settings: Settings,
    request: TrainingRequest,
    progress: RunProgress | None = None,
    capture: bool = True,
    bytecode_from: Path | None = None,
) -> TrainingRunResult:
    """Run the compiled training pipeline on this machine, end to end.

    A failed pipeline does not raise: the result carries the failure, and whether the champion
    moved before it (promotion is idempotent, so a rerun finishes the job).

    Args:
        settings: the configuration; handed to every task.
        request: dataset version, revision and params of the run.
        progress: hooks to show progress; ``None`` shows nothing.
        capture: send what the tasks print to ``<state_dir>/runs/<timestamp>/pipeline.log``
            (``result.log``); ``False`` lets them print to stdout as they run.
        bytecode_from: a bytecode cache written before the state folder existed (the compile
            check's); moved into ``<state_dir>/pycache``
            (:func:`slipway.orchestration.local_run.adopt_bytecode`) so that the tasks do not
            compile the same modules again.

    Returns:
        What the run did, for the caller to report.

    Raises:
        RemoteUnavailableError: the DVC remote cannot be read or seeded, or MLflow is unreachable.
    """
    from slipway.orchestration.local_run import bytecode_cached

    # the state folder's cache if it exists (else the caller's, if any: the compile check's);
    # once the run made the folder (after the DVC status below), its cache for the rest: what
    # this process compiles, the tasks read
    with bytecode_cached(settings):
        return _run_training(settings, request, progress or _Quiet(), capture, bytecode_from)


def _run_training(
    settings: Settings,
    request: TrainingRequest,
    progress: RunProgress,
    capture: bool,
    bytecode_from: Path | None,
) -> TrainingRunResult:
    from slipway.data import settings_for_spec, unpushed_datasets
    from slipway.orchestration.local_run import adopt_bytecode, bytecode_cached

    # seed only this checkout's own remote; another DVC project (SLIPWAY_DVC_REPO) owns its data.
    # Only the requested dataset counts: a shipped dataset whose package is not installed stays
    # unpushed and must not make every run seed again.
    own_project = Path(settings.dvc_repo).resolve() == settings.project_dir
    unpushed = own_project and [
        path
        for path in unpushed_datasets(
            settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url
        )
        if path.startswith(f"data/{request.dataset}/")
    ]
    # the champion of this dataset's model; the tasks get the base settings and derive it too
    model = settings if request.spec is None else settings_for_spec(settings, request.spec)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if bytecode_from is not None:
        adopt_bytecode(settings, bytecode_from)
    with bytecode_cached(settings):
        return _run_in_state(settings, request, progress, capture, model, unpushed)


def _run_in_state(
    settings: Settings,
    request: TrainingRequest,
    progress: RunProgress,
    capture: bool,
    model: Settings,
    unpushed: bool | list[str],
) -> TrainingRunResult:
    from slipway.data import seed_datasets
    from slipway.orchestration.local_run import compiled_ahead, run_compiled_pipeline
    from slipway.orchestration.task_log import new_run_log, output_to

    log = new_run_log(settings.state_dir) if capture else None
    progress.starting(f"{request.dataset} {request.dataset_version}", log)
    capturing = output_to(log) if log is not None else nullcontext(None)
    with capturing as terminal, progress.running(terminal):
        if unpushed:
            with progress.seeding(settings.dvc_remote_url):
                seed_datasets(
                    settings.project_dir, settings.dvc_remote_url, settings.aws_endpoint_url
                )
        started = time.monotonic()
        champion = _ChampionBefore(model)
        started_at = time.time()
        # what the summary and the report below import, loaded while the tasks run
        preload = threading.Thread(target=preload_after_run, name="slipway-preload", daemon=True)
        preload.start()
        try:
            with compiled_ahead(settings):  # the later tasks' imports, on the spare core
                run_id = run_compiled_pipeline(
                    settings.compiled_pipeline,
                    settings,
                    request.arguments(),
                    champion.ahead(progress),
                )
        except PipelineRunError as e:
            preload.join()
            return _failed(settings, model, e, started, started_at, champion.version(), log)
        preload.join()
        champion_before = champion.version()
        from slipway.training import run_summary, write_run_report

        summary = run_summary(settings.tracking_uri, run_id)
        champion_after = champion_version(model)
        html_report = write_run_report(settings.tracking_uri, run_id, report_path(settings, run_id))
    return TrainingRunResult(
        seconds=time.monotonic() - started,
        champion_before=champion_before,
        champion_after=champion_after,
        run_id=run_id,
        summary=summary,
        log=log,
        html_report=html_report,
    )


#: the tasks that never open the MLflow store: the champion look-up may still run beside them
_BEFORE_TRACKING = frozenset({"pull-data", VALIDATE_TASK})


class _ChampionBefore:
    """The champion before the run, looked up beside pull-data and validate-data when it can be.

    A local SQLite store that exists is read in a thread (MLflow's import and the store's open
    take ~2 s) while the first two tasks run: they never open the store, and the next task
    starts only once the look-up is done (:meth:`ahead`), so no task that tracks or promotes
    runs before it. Any other store is asked here, before the pipeline, as before: a tracking
    server that does not answer fails the run before its first task.
    """

    def __init__(self, settings: Settings) -> None:
        self._value: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        uri = settings.tracking_uri
        if uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).is_file():
            self._thread = threading.Thread(
                target=self._look_up, args=(settings,), name="slipway-champion", daemon=True
            )
            self._thread.start()
        else:
            self._value = champion_version(settings)

    def _look_up(self, settings: Settings) -> None:
        try:
            self._value = champion_version(settings)
        except BaseException as e:
            self._error = e

    def wait(self) -> None:
        """Block until the look-up is done (its error, if any, waits for :meth:`version`)."""
        if self._thread is not None:
            self._thread.join()

    def version(self) -> str | None:
        """The champion's registry version before the run (``None``: none).

        Raises:
            RemoteUnavailableError: the look-up failed (as :func:`champion_version` raises).
        """
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def ahead(self, events: TaskEvents) -> TaskEvents:
        """``events``, each task after validate-data starting only once the look-up is done."""
        return _AfterLookUp(events, self)


class _AfterLookUp:
    def __init__(self, events: TaskEvents, champion: _ChampionBefore) -> None:
        self.events = events
        self.champion = champion

    def task_started(self, task: str) -> None:
        if task not in _BEFORE_TRACKING:
            self.champion.wait()  # kfp.local logs the start before it starts the task
        self.events.task_started(task)

    def task_finished(self, task: str, status: TaskStatus, seconds: float) -> None:
        self.events.task_finished(task, status, seconds)


def _failed(  # noqa: PLR0913 - the run's state at the failure
    settings: Settings,
    model: Settings,
    error: PipelineRunError,
    started: float,
    started_at: float,
    champion_before: str | None,
    log: Path | None,
) -> TrainingRunResult:
    """The result of a run whose pipeline failed (report found)."""
    stopped_by_validation = error.failed_task == VALIDATE_TASK
    return TrainingRunResult(
        seconds=time.monotonic() - started,
        champion_before=champion_before,
        champion_after=champion_version(model),
        failure=error,
        report=latest_report(settings.state_dir, since=started_at)
        if stopped_by_validation
        else None,
        log=log,
    )


def report_path(settings: Settings, run_id: str) -> Path:
    """Where the local copy of a run's HTML report goes: ``<state_dir>/reports/<run id>.html``."""
    return settings.state_dir / "reports" / f"{run_id}.html"


def champion_version(settings: Settings) -> str | None:
    """The registry version the ``champion`` alias points at, or ``None`` when there is none.

    A local SQLite store that does not exist yet has no champion: it is not created here (the
    first task that tracks a run creates it, as it would in one process), which spares a fresh
    state folder MLflow's import and its table creation before the first task.
    """
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    from slipway.registry import get_alias_version, get_client

    version = get_alias_version(get_client(settings.tracking_uri), settings.model_name)
    return None if version is None else str(version.version)


def preload_after_run() -> None:
    """Import what the run summary, the champion look-up and the HTML report need (MLflow).

    Called in a thread while the tasks run (they are other processes; this one waits on them),
    so that these imports are off the run's wall time. Imports only: the MLflow store is opened
    after the pipeline, never beside a task that may be creating it. A failed import is left to
    the code that needs the module to report.
    """
    import importlib

    for module in (
        "mlflow",
        "mlflow.store.tracking.sqlalchemy_store",
        "slipway.registry.client",
        "slipway.training.tracking",
        "slipway.training.report",
    ):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: S112 - reported by the import that needs it
            continue


def latest_report(state_dir: Path, since: float) -> Path | None:
    """This run's validation report (never an older run's).

    Args:
        state_dir: the state folder whose ``kfp/`` holds the local runs.
        since: Unix time the run started; older reports are ignored.

    Returns:
        The newest ``validate-data/report`` written since ``since``, or ``None``.
    """
    reports = sorted(
        (
            p
            for p in (state_dir / "kfp").glob(f"*/{VALIDATE_TASK}/report")
            if p.stat().st_mtime >= since
        ),
        key=lambda p: p.stat().st_mtime,
    )
    return reports[-1] if reports else None
