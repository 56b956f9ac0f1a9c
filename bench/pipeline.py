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
from pathlib import Path

from bench.report import write_section

PROJECT = Path(__file__).resolve().parents[1]

IN_PROCESS = """
import json, sys, time
from pathlib import Path
T = {}
t0 = time.perf_counter()
import skops.io as sio
from slipway.config import load_settings
from slipway.params import load_params
from slipway.data import ensure_valid, load_frame, pull_dataset, validate_with_spec
from slipway.training.train import train_candidate
from slipway.training.evaluate import evaluate_candidate
from slipway.registry.promotion import CandidateRun, promote_candidate
T["imports"] = time.perf_counter() - t0
state = Path(sys.argv[1])
s = load_settings(state_dir=state)
p = load_params(s.params_file)
csv = state / "dataset.csv"
t = time.perf_counter()
pulled = pull_dataset(s.dvc_repo, "breast-cancer", "v2", csv, sys.argv[2])
ref, spec = pulled.ref, pulled.spec
T["pull-data"], t = time.perf_counter() - t, time.perf_counter()
ensure_valid(validate_with_spec(load_frame(csv, spec), spec), ref.label)
T["validate-data"], t = time.perf_counter() - t, time.perf_counter()
tr = train_candidate(csv, ref, spec, p.search, s)
(state / "model.skops").write_bytes(sio.dumps(tr.model))
T["search"], t = time.perf_counter() - t, time.perf_counter()
c = CandidateRun(tr.run_id, tr.model_uri, state / "model.skops", csv, ref)
e = evaluate_candidate(c, spec, p.search, p.evaluate, s)
T["evaluate"], t = time.perf_counter() - t, time.perf_counter()
if e.decision.promote:
    promote_candidate(c, e.decision.champion_version, e.decision.candidate, spec, p.search, s)
T["promote"] = time.perf_counter() - t
print("STEPS " + json.dumps(T))
"""

TASKS = ("pull-data", "validate-data", "search", "evaluate", "promote")
_STAMP = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task '([^']+)'|Task '([^']+)' finished)"
)
_IMPORT = re.compile(r"^\s+import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds that ``argv`` takes to run to success, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=PROJECT, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


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
    pipeline, library, tasks, steps = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        remote = Path(tmp) / "remote"
        for i in range(repeats):
            state = Path(tmp) / f"kfp-{i}"
            env = {**base, "SLIPWAY_STATE_DIR": str(state), "SLIPWAY_DVC_REMOTE_URL": str(remote)}
            pipeline.append(timed([sys.executable, "-m", "slipway", "run"], env)[0])
            tasks.append(task_seconds(_log_of(state)))
            state = Path(tmp) / f"lib-{i}"
            state.mkdir()
            env = {**base, "SLIPWAY_STATE_DIR": str(state)}
            seconds, out = timed([sys.executable, "-c", IN_PROCESS, str(state), str(remote)], env)
            library.append(seconds)
            steps.append(json.loads(out.split("STEPS ", 1)[1]))
            print(
                f"run {i + 1}: pipeline {pipeline[-1]:.1f} s, in-process {library[-1]:.1f} s",
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
        }
        for task in TASKS
    }
    return {
        "pipeline": pipeline,
        "library": library,
        "pipeline_median": p50,
        "library_median": l50,
        "ratio": p50 / l50,
        "tasks": per_task,
        "library_imports": statistics.median(s["imports"] for s in steps),
    }


def pipeline_section(m: dict, repeats: int) -> str:
    """The pipeline section of docs/benchmarks.md from :func:`measure_pipeline`'s result."""
    p50, l50 = m["pipeline_median"], m["library_median"]
    rows = "".join(
        f"| {task} | {t['wall']:.1f} s | {t['library']:.1f} s | {t['imports']:.1f} s | "
        f"{t['wall'] - t['library']:+.1f} s |\n"
        for task, t in m["tasks"].items()
    )
    in_tasks = sum(t["wall"] for t in m["tasks"].values())
    return (
        "## Training pipeline, end to end (fresh state each run, first run promotes)\n\n"
        f"Command: `uv run python -m bench.pipeline --repeats {repeats}` (run by `make bench`, "
        "through `bench.scale`).\n\n"
        "| what | median | runs |\n| --- | --- | --- |\n"
        f"| `slipway run` (compiled YAML, kfp.local, 5 tasks) | {p50:.1f} s | {', '.join(f'{x:.1f}' for x in m['pipeline'])} |\n"
        f"| the same library calls in one process | {l50:.1f} s | {', '.join(f'{x:.1f}' for x in m['library'])} |\n"
        f"| overhead of the pipeline form | {p50 - l50:+.1f} s ({m['ratio']:.2f}x; target ≤ 1.5x: "
        f"{'met' if m['ratio'] <= 1.5 else 'MISSED'}) | |\n\n"
        "Per task (medians): the task's wall time under kfp.local (its log lines), the same "
        "library call in the one process (its imports paid once up front: "
        f"{m['library_imports']:.1f} s), and the task's own imports (`PYTHONPROFILEIMPORTTIME`, "
        "one more run with the bytecode cache warm).\n\n"
        "| task | wall in the pipeline | library call in one process | imports in the task | difference |\n"
        "| --- | ---: | ---: | ---: | ---: |\n"
        f"{rows}\n"
        f"The tasks take {in_tasks:.1f} s of the run's {p50:.1f} s; the rest is `slipway run` "
        "itself: its imports, the DVC status of the remote, the champion look-ups before and "
        "after, the run summary and the HTML report (docs/pipeline.md, \"Where a local run's "
        'time goes").\n'
    )


def main() -> None:
    """Run both forms ``--repeats`` times and write the medians to docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(write_section("pipeline", pipeline_section(measure_pipeline(args.repeats), args.repeats)))


if __name__ == "__main__":
    main()
