"""Run the *compiled* pipeline YAML on this machine with ``kfp.local.SubprocessRunner``.

What runs here is the file the Kubeflow dashboard uploads: the YAML is loaded with
``load_component_from_file``, never rebuilt from the Python function. Each task is a subprocess
of the current environment, configured through the same ``SLIPWAY_*`` variables a pod gets.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from slipway.config import Settings, scoped_environ
from slipway.errors import PipelineRunError
from slipway.orchestration.task_log import TaskEvents, TaskWatcher, executor_tasks

# kfp.local names the failed tasks innermost first, each quoted (and coloured on a terminal):
# "... Inner task failed: 'validate-data' inside 'condition-1'." or "Task 'search' finished ..."
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILED_TASK = re.compile(r"Inner task failed: '([^']+)'|Task '([^']+)' finished")


def run_compiled_pipeline(
    yaml_path: Path,
    settings: Settings,
    arguments: Mapping[str, Any],
    events: TaskEvents | None = None,
) -> str:
    """Execute the compiled pipeline and return its output (the MLflow run id).

    The tasks inherit this process's environment, so ``PATH`` (our interpreter first) and the
    ``SLIPWAY_*`` variables are set for the run only and restored afterwards. What the tasks
    print goes to this process's stdout (see :func:`slipway.orchestration.task_log.output_to`).

    Args:
        yaml_path: the compiled pipeline (``pipelines/training_pipeline.yaml``).
        settings: handed to every task as ``SLIPWAY_*`` environment variables.
        arguments: run parameters, as a dashboard user would set them.
        events: told when each task starts and ends (a task that never ran: skipped).

    Returns:
        The pipeline's output: the MLflow run id of the candidate.

    Raises:
        PipelineRunError: a task failed (``failed_task`` names it); its log above says why.
    """
    from kfp import local
    from kfp.components import load_component_from_file

    pipeline_root = settings.state_dir / "kfp"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    # tasks start `python3 -m kfp.dsl.executor_main`: make that our interpreter, with our settings
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with scoped_environ({"PATH": path, **bytecode_cache(settings), **settings.as_env()}):
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(pipeline_root),
            raise_on_error=True,
        )
        pipeline = load_component_from_file(str(yaml_path))
        watcher = _watcher(pipeline, events)
        try:
            with watcher:
                task = pipeline(**arguments)
        except RuntimeError as e:
            raise PipelineRunError(
                f"pipeline {pipeline.name} failed: {_ANSI.sub('', str(e))}",
                failed_task=failed_task_of(e),
            ) from e
    return task.output


def import_kfp_sdk() -> None:
    """Import the ``kfp`` package without its API client: all that compiling and running need.

    ``import kfp`` also imports ``kfp.Client`` (kfp_server_api, requests, google-auth and the
    whole kubernetes client, ~600 model modules: 1.7 s on a new bytecode cache, 0.4 s with it
    cached) unless ``_KFP_RUNTIME`` is ``true``, as kfp's own task command sets it (every
    compiled component runs ``_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main``). This sets
    it for the package's import alone: ``kfp.dsl``, ``kfp.compiler`` and ``kfp.local`` then import
    whole, as usual, and whoever needs the client imports ``kfp.client`` (``slipway submit``).
    Nothing is imported again once ``kfp`` is.
    """
    if "kfp" not in sys.modules:
        with scoped_environ({"_KFP_RUNTIME": "true"}):
            import kfp  # noqa: F401


def preload_runner() -> None:
    """Import ``kfp.local`` and the YAML loader now (``slipway run``: while the compile check runs).

    :func:`run_compiled_pipeline` imports them anyway; importing them while another process
    works keeps them off the run's wall time. kfp's API client is not imported
    (:func:`import_kfp_sdk`). pandas is imported too, which this process needs only after the
    first tasks (MLflow imports it, for the summary): on a new bytecode cache that compiles it
    (~1 s) while this process would wait for the check anyway, instead of in validate-data, the
    first task that imports it.
    """
    import_kfp_sdk()
    import kfp.components
    import kfp.local  # noqa: F401
    import pandas  # noqa: F401


def bytecode_cache(settings: Settings, folder: Path | None = None) -> dict[str, str]:
    """Environment that lets the tasks share compiled bytecode under ``<state_dir>/pycache``.

    Every task is a new interpreter that imports pandas, scikit-learn, MLflow and more. Without
    ``.pyc`` files (a venv installed without ``--compile-bytecode`` and
    ``PYTHONDONTWRITEBYTECODE`` set, as here) each task compiled them from source again: 4-8 s
    a task. The component image compiles them at build time (``UV_COMPILE_BYTECODE=1``); this
    gives the local run the same, compiled once by the first task that imports a module, kept
    in the state folder (``PYTHONPYCACHEPREFIX``) so that neither the checkout nor the venv is
    written to. ``make clean`` removes it with the rest of the state.

    Args:
        settings: names the state folder.
        folder: another cache folder instead (the compile check's, before the state folder
            exists; :func:`adopt_bytecode` moves it in later).
    """
    return {
        "PYTHONPYCACHEPREFIX": str(folder or settings.state_dir / "pycache"),
        "PYTHONDONTWRITEBYTECODE": "",
    }


def adopt_bytecode(settings: Settings, folder: Path) -> None:
    """Move a bytecode cache written elsewhere into ``<state_dir>/pycache`` (state folder exists).

    The compile check runs before the state folder may exist (a refused run leaves none), so it
    writes to a temporary folder; the tasks then read what it compiled (kfp, pandas, pydantic,
    slipway) instead of compiling it again. A ``.pyc`` is checked against its source's size and
    time when read, wherever its folder was written, so moving one changes nothing it holds.

    Args:
        settings: names the state folder.
        folder: the cache to move; gone afterwards (a missing one is left alone).
    """
    import shutil

    if not folder.is_dir():
        return
    target = settings.state_dir / "pycache"
    if target.exists():
        shutil.copytree(folder, target, dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    else:
        shutil.move(folder, target)


@contextmanager
def bytecode_cached(settings: Settings, folder: Path | None = None) -> Iterator[None]:
    """Within the block, this process reads and writes bytecode where the tasks do.

    The same cache as :func:`bytecode_cache` for ``slipway run`` itself, which imports DVC, kfp
    and MLflow lazily during the run; ``sys.pycache_prefix`` and ``sys.dont_write_bytecode``
    are read at each import, and restored on exit. Only once the state folder exists (a run
    made it): a run refused by its first checks must leave no state folder behind. Before that,
    ``folder`` (a temporary cache that :func:`adopt_bytecode` moves in once the run made the
    state folder) takes its place.

    Args:
        settings: names the state folder.
        folder: the cache to use instead of the state folder's; ``None``: the state folder's,
            if it exists (else nothing changes).
    """
    if folder is None and not settings.state_dir.is_dir():
        yield
        return
    saved = sys.pycache_prefix, sys.dont_write_bytecode
    sys.pycache_prefix = str(folder or settings.state_dir / "pycache")
    sys.dont_write_bytecode = False
    try:
        yield
    finally:
        sys.pycache_prefix, sys.dont_write_bytecode = saved


#: What the later tasks import and nothing before them compiles, in the order they need it:
#: evaluate's figures (matplotlib), the model file (skops, which imports every scikit-learn
#: estimator to list its trusted types), promote's ONNX conversion and check. ``slipway run``
#: compiles kfp, pandas and MLflow itself (its check, :func:`preload_runner`, its preload
#: thread), and validate-data scikit-learn's base, before a later task needs them.
AHEAD_IMPORTS = ("matplotlib.figure", "skops.io", "skl2onnx", "onnxruntime")

# the background interpreter of compiled_ahead: second in line for the CPU, imports only
_AHEAD = """
import gc, importlib, os, sys
os.nice(10)  # the tasks and slipway run come first
gc.disable()  # it only imports, then exits
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:  # a task that imports it reports it
        pass
os._exit(0)  # nothing to tear down: its only output is the bytecode, written as it goes
"""


def module_compiled(module: str) -> bool:
    """Whether ``module``'s bytecode is in this process's cache, or there is none to compile.

    Finds the source file without importing anything (its top-level package's spec and the
    path below it); ``True`` for a module that is not installed or not Python source.
    """
    from importlib.util import cache_from_source, find_spec

    top, _, rest = module.partition(".")
    spec = find_spec(top)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return True
    source = Path(spec.origin)
    if rest:
        below = source.parent.joinpath(*rest.split("."))
        source = (
            below.with_suffix(".py")
            if below.with_suffix(".py").is_file()
            else below / "__init__.py"
        )
    return not source.is_file() or Path(cache_from_source(str(source))).is_file()


@contextmanager
def compiled_ahead(
    settings: Settings, modules: tuple[str, ...] = AHEAD_IMPORTS
) -> Iterator[Any | None]:
    """While the block runs, a background interpreter compiles ``modules`` into the tasks' cache.

    On a new state folder each module is compiled by the first task that imports it, on that
    task's time; the tasks run one after the other, so the machine's other core is mostly idle
    meanwhile. This interpreter imports ``modules`` (those not compiled yet, see
    :func:`module_compiled`) into ``<state_dir>/pycache`` (:func:`bytecode_cache`) at a lower
    priority (``nice`` 10) while the first tasks run, so that a later task reads their bytecode
    instead of compiling it. The tasks run exactly as without it: a ``.pyc`` is written whole
    under a temporary name and renamed, and checked against its source when read. It is
    stopped at the end of the block if still running. Call it with this process's bytecode
    cache set to the tasks' (:func:`bytecode_cached`).

    Yields:
        The background process (``subprocess.Popen``), or ``None`` when all are compiled.
    """
    import subprocess

    missing = [name for name in modules if not module_compiled(name)]
    if not missing:
        yield None
        return
    process = subprocess.Popen(
        [sys.executable, "-c", _AHEAD, *missing],
        env={**os.environ, **bytecode_cache(settings)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _watcher(pipeline: Any, events: TaskEvents | None) -> AbstractContextManager[Any]:
    if events is None:
        return nullcontext()
    spec = getattr(pipeline, "pipeline_spec", None)
    return TaskWatcher(events, executor_tasks(spec) if spec is not None else ()).watching()


def failed_task_of(error: BaseException) -> str | None:
    """The innermost failed task that a ``kfp.local`` error names, or ``None``.

    Args:
        error: the ``RuntimeError`` that ``kfp.local`` raised with ``raise_on_error=True``.

    Returns:
        The task name, e.g. ``validate-data``.
    """
    found = _FAILED_TASK.search(_ANSI.sub("", str(error)))
    return None if found is None else found[1] or found[2]
