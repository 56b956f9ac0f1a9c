"""Benchmark: the local pipeline run beside the same library calls in one process.

The pipeline runs as the compiled YAML under kfp.local. Median of 3 each, written to
docs/benchmarks.md.

    uv run python -m bench.pipeline [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.report import write_section

PROJECT = Path(__file__).resolve().parents[1]

IN_PROCESS = """
import json, sys, time
from pathlib import Path
T = {}
X = {}  # per step, the seconds of the calls the first version of this script left out
if sys.argv[3:] == ["paused"]:  # its imports as the tasks' run: without the collector
    from slipway.orchestration import pause_gc_in_imports
    pause_gc_in_imports()
t0 = time.perf_counter()
import skops.io as sio
from slipway.config import load_settings
from slipway.params import load_params
from slipway.data import count_rows, ensure_valid, load_frame, pull_dataset, validate_with_spec
from slipway.training.train import train_candidate
from slipway.training.evaluate import evaluate_candidate
from slipway.training import (
    holdout_figures, report_evaluation, run_summary, validation_with_findings, write_run_report
)
from slipway.registry.promotion import CandidateRun, promote_candidate
T["imports"] = time.perf_counter() - t0
state = Path(sys.argv[1])
s = load_settings(state_dir=state)
p = load_params(s.params_file)
csv = state / "dataset.csv"
t = time.perf_counter()
pulled = pull_dataset(s.dvc_repo, "breast-cancer", "v2", csv, sys.argv[2])
ref, spec = pulled.ref, pulled.spec
x = time.perf_counter()
count_rows(csv)
X["pull-data"] = time.perf_counter() - x
T["pull-data"], t = time.perf_counter() - t, time.perf_counter()
result = validate_with_spec(load_frame(csv, spec), spec)
x = time.perf_counter()
validation = result.to_markdown(ref.label)
(state / "report.md").write_text(validation)
X["validate-data"] = time.perf_counter() - x
ensure_valid(result, ref.label)
T["validate-data"], t = time.perf_counter() - t, time.perf_counter()
tr = train_candidate(csv, ref, spec, p.search, s)
(state / "model.skops").write_bytes(sio.dumps(tr.model))
T["search"], t = time.perf_counter() - t, time.perf_counter()
c = CandidateRun(tr.run_id, tr.model_uri, state / "model.skops", csv, ref)
e = evaluate_candidate(c, spec, p.search, p.evaluate, s)
x = time.perf_counter()
figures = holdout_figures(c, spec, p.search)
page = state / "evaluate.html"
report_evaluation(tr.run_id, figures, validation_with_findings(validation, e.decision.data_problem), s, page)
X["evaluate"] = time.perf_counter() - x
T["evaluate"], t = time.perf_counter() - t, time.perf_counter()
if e.decision.promote:
    promote_candidate(c, e.decision.champion_version, e.decision.candidate, spec, p.search, s)
    x = time.perf_counter()
    write_run_report(s.tracking_uri, tr.run_id, state / "promote.html", log=True)
    X["promote"] = time.perf_counter() - x
T["promote"], t = time.perf_counter() - t, time.perf_counter()
# what `slipway run` does after the pipeline: the summary it prints and the run's HTML report
run_summary(s.tracking_uri, tr.run_id)
write_run_report(s.tracking_uri, tr.run_id, state / "reports" / f"{tr.run_id}.html")
T["after"] = X["after"] = time.perf_counter() - t
print("STEPS " + json.dumps(T) + " EXTRA " + json.dumps(X))
"""

TASKS = ("pull-data", "validate-data", "search", "evaluate", "promote")
_STAMP = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task '([^']+)'|Task '([^']+)' finished)"
)
_RECORD = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - ")
_IMPORT = re.compile(r"^\s+import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")
_WROTE = re.compile(
    r"\[KFP Executor [\d-]+ (\d\d):(\d\d):(\d\d),(\d+) INFO\]: Wrote executor output"
)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds that ``argv`` takes to run to success, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=PROJECT, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def run_phases(log: Path, started: float, ended: float) -> dict[str, float]:
    """Seconds of ``slipway run`` before its pipeline's first record and after its last one.

    Args:
        log: the run's ``pipeline.log`` (kfp.local's records carry the local time of day).
        started: Unix time the command started.
        ended: Unix time it ended.
    """
    midnight = datetime.fromtimestamp(started).replace(hour=0, minute=0, second=0, microsecond=0)
    stamps = [
        midnight.timestamp() + int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        for m in map(_RECORD.match, log.read_text(errors="replace").splitlines())
        if m
    ]
    return {"before": stamps[0] - started, "after": ended - stamps[-1]} if stamps else {}


def task_seconds(log: Path) -> dict[str, float]:
    """Each task's wall time, from kfp.local's "Executing task" / "finished" log lines."""
    started, out = {}, {}
    for line in log.read_text(errors="replace").splitlines():
        m = _STAMP.match(line)
        if not m:
            continue
        seconds = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        if m[4]:
            started[m[4]] = seconds
        elif m[5] in started:
            out[m[5]] = seconds - started[m[5]]
    return out


def task_exits(log: Path) -> dict[str, float]:
    """Per task, the seconds from its last own log line (its outputs written) to its end.

    What the task's interpreter does after the component returned: exit, and its teardown.
    """
    out: dict[str, float] = {}
    wrote = None
    for line in log.read_text(errors="replace").splitlines():
        found = _WROTE.search(line)
        if found:
            wrote = int(found[1]) * 3600 + int(found[2]) * 60 + int(found[3]) + int(found[4]) / 1e3
        m = _STAMP.match(line)
        if m and m[5] and wrote is not None:
            out[m[5]] = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) - wrote
            wrote = None
    return out


def task_imports(log: Path) -> dict[str, float]:
    """Per task, the seconds its top-level imports took (``PYTHONPROFILEIMPORTTIME`` lines).

    A task's own lines are the indented ones (kfp.local streams them under "Streamed logs:");
    ``slipway run``'s own imports during the run are not indented and not counted.
    """
    out: dict[str, float] = {}
    task = None
    for line in log.read_text(errors="replace").splitlines():
        m = _STAMP.match(line)
        if m and m[4]:
            task = m[4]
        found = _IMPORT.match(line)
        if found and task:
            out[task] = out.get(task, 0.0) + int(found[1]) / 1e6
    return out


def _log_of(state: Path) -> Path:
    return sorted(state.glob("runs/*/pipeline.log"))[-1]


def measure_pipeline(repeats: int) -> dict:
    """``slipway run`` and the in-process calls ``repeats`` times each, then one traced run.

    Returns:
        medians, ratio, the runs, and per task: wall (median), in-process seconds (median),
        import seconds (traced run).
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    pipeline, library, tasks, steps, extras, phases, exits = [], [], [], [], [], [], []
    paused = []  # the one process with its imports paused as the tasks' are
    with tempfile.TemporaryDirectory() as tmp:
        remote = Path(tmp) / "remote"
        for i in range(repeats):
            state = Path(tmp) / f"kfp-{i}"
            env = {**base, "SLIPWAY_STATE_DIR": str(state), "SLIPWAY_DVC_REMOTE_URL": str(remote)}
            started = time.time()
            pipeline.append(timed([sys.executable, "-m", "slipway", "run"], env)[0])
            tasks.append(task_seconds(_log_of(state)))
            exits.append(task_exits(_log_of(state)))
            phases.append(run_phases(_log_of(state), started, time.time()))
            state = Path(tmp) / f"lib-{i}"
            state.mkdir()
            env = {**base, "SLIPWAY_STATE_DIR": str(state)}
            seconds, out = timed([sys.executable, "-c", IN_PROCESS, str(state), str(remote)], env)
            library.append(seconds)
            found, extra = out.split("STEPS ", 1)[1].split(" EXTRA ")
            steps.append(json.loads(found))
            extras.append(sum(json.loads(extra).values()))
            state = Path(tmp) / f"paused-{i}"
            state.mkdir()
            env = {**base, "SLIPWAY_STATE_DIR": str(state)}
            argv = [sys.executable, "-c", IN_PROCESS, str(state), str(remote), "paused"]
            paused.append(timed(argv, env)[0])
            print(
                f"run {i + 1}: pipeline {pipeline[-1]:.1f} s, in-process {library[-1]:.1f} s "
                f"(imports paused {paused[-1]:.1f} s)",
                flush=True,
            )
        # one more run with import tracing, its bytecode cache already warm (as on a 2nd run)
        traced = Path(tmp) / "traced"
        shutil.copytree(Path(tmp) / "kfp-0" / "pycache", traced / "pycache")
        env = {
            **base,
            "SLIPWAY_STATE_DIR": str(traced),
            "SLIPWAY_DVC_REMOTE_URL": str(remote),
            "PYTHONPROFILEIMPORTTIME": "1",
        }
        timed([sys.executable, "-m", "slipway", "run"], env)
        imports = task_imports(_log_of(traced))
    p50, l50 = statistics.median(pipeline), statistics.median(library)
    per_task = {
        task: {
            "wall": statistics.median(t.get(task, 0.0) for t in tasks),
            "library": statistics.median(s.get(task, 0.0) for s in steps),
            "imports": imports.get(task, 0.0),
            "exit": statistics.median(x.get(task, 0.0) for x in exits),
        }
        for task in TASKS
    }
    extra = statistics.median(extras)
    return {
        "pipeline": pipeline,
        "library": library,
        "pipeline_median": p50,
        "library_median": l50,
        "ratio": p50 / l50,
        "paused": paused,
        "paused_median": statistics.median(paused),
        "ratio_paused": p50 / statistics.median(paused),
        "library_extras": extra,
        "ratio_without_extras": p50 / (l50 - extra),
        "tasks": per_task,
        "library_imports": statistics.median(s["imports"] for s in steps),
        "library_after": statistics.median(s["after"] for s in steps),
        "before": statistics.median(ph.get("before", 0.0) for ph in phases),
        "after": statistics.median(ph.get("after", 0.0) for ph in phases),
    }


def pipeline_section(m: dict, repeats: int) -> str:
    """The pipeline section of docs/benchmarks.md from :func:`measure_pipeline`'s result."""
    p50, l50 = m["pipeline_median"], m["library_median"]
    rows = "".join(
        f"| {task} | {t['wall']:.1f} s | {t['library']:.1f} s | {t['imports']:.1f} s | "
        f"{t['exit']:.2f} s | {t['wall'] - t['library']:+.1f} s |\n"
        for task, t in m["tasks"].items()
    )
    before, after = m["before"], m["after"]
    rows += (
        f"| `slipway run` before the first task | {before:.1f} s | "
        f"{m['library_imports']:.1f} s (the imports) | | | "
        f"{before - m['library_imports']:+.1f} s |\n"
        f"| `slipway run` after the last task | {after:.1f} s | {m['library_after']:.1f} s | | | "
        f"{after - m['library_after']:+.1f} s |\n"
    )
    in_tasks = sum(t["wall"] for t in m["tasks"].values())
    rest = p50 - in_tasks - before - after
    return (
        "## Training pipeline, end to end (fresh state each run, first run promotes)\n\n"
        f"Command: `uv run python -m bench.pipeline --repeats {repeats}` (run by `make bench`, "
        "through `bench.scale`). Each run has a new state folder, so its bytecode cache starts "
        "empty, as the one process compiles everything once too (`PYTHONDONTWRITEBYTECODE`).\n\n"
        "| what | median | runs |\n| --- | --- | --- |\n"
        f"| `slipway run` (compiled YAML, kfp.local, 5 tasks) | {p50:.1f} s | {', '.join(f'{x:.1f}' for x in m['pipeline'])} |\n"
        f"| the same library calls in one process | {l50:.1f} s | {', '.join(f'{x:.1f}' for x in m['library'])} |\n"
        f"| overhead of the pipeline form | {p50 - l50:+.1f} s ({m['ratio']:.2f}x; target ≤ 1.5x: "
        f"{'met' if m['ratio'] <= 1.5 else 'MISSED'}) | |\n"
        f"| the one process, its imports without the collector as the tasks' run "
        f"(`pause_gc_in_imports`) | {m['paused_median']:.1f} s "
        f"({m['ratio_paused']:.2f}x) | {', '.join(f'{x:.1f}' for x in m['paused'])} |\n\n"
        "Every task, `slipway run` and its compile check import with the cyclic collector "
        "paused (`slipway.orchestration.task_start`); the last row gives the one process the "
        "same, so that the ratio beside it counts only what the pipeline form repeats.\n\n"
        "The one process makes every library call the tasks and `slipway run` make: besides "
        "the steps' own calls, pull-data's row count, validate-data's report, evaluate's holdout "
        "figures and run page, promote's run page, and the run summary and HTML report that "
        "`slipway run` writes at the end. Earlier versions of this benchmark left those out; "
        f"they take {m['library_extras']:.1f} s here, and against the one process without them "
        f"the ratio is {m['ratio_without_extras']:.2f}x.\n\n"
        "Per task (medians): the task's wall time under kfp.local (its log lines), the same "
        "library calls in the one process (its imports paid once up front: "
        f"{m['library_imports']:.1f} s), and the task's own imports (`PYTHONPROFILEIMPORTTIME`, "
        "one more run with the bytecode cache warm) and its exit (from its last log "
        'line, its outputs written, to kfp.local\'s "finished"). The last two rows are `slipway run` '
        "itself, from its start to kfp.local's first record and from the last record to its "
        "end.\n\n"
        "| step | wall in the pipeline | library calls in one process | imports in the task "
        "| exit of the task | difference |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        f"{rows}\n"
        f"The tasks take {in_tasks:.1f} s of the run's {p50:.1f} s, `slipway run` before and "
        f"after them {before + after:.1f} s, and kfp.local between the tasks {rest:.1f} s "
        '(medians of different runs need not add up exactly); docs/pipeline.md, "Where a local '
        "run's time goes\", says what each part is.\n"
    )


def main() -> None:
    """Run both forms ``--repeats`` times and write the medians to docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(write_section("pipeline", pipeline_section(measure_pipeline(args.repeats), args.repeats)))


if __name__ == "__main__":
    main()
