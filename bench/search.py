"""Benchmark: the search's own costs, written to docs/benchmarks.md (the ``search`` section).

Three parts, each printed as it is measured:

- **shards**: the compiled pipeline under kfp.local with ``search_shards`` 1, 2 and 4 on the
  default dataset and grid; per task its wall time, per shard task the seconds its fits took
  (from its ``shards/shard-<i>.json``) and so the overhead a shard pays beyond fitting, and the
  search's wall time if the shards ran at once (as on a cluster);
- **halving**: ``search.strategy`` grid against halving on each shipped dataset with its own
  params (``params.yaml`` with ``data/<name>/params.yaml`` merged over): fits, seconds, best CV
  score and the best pipeline's holdout score;
- **logging**: the child runs of :func:`slipway.training.tracking.log_candidate_runs` (batched)
  against one MLflow call per param and metric, on a local SQLite store: calls and
  milliseconds per candidate.

    uv run python -m bench.search [--parts shards,halving,logging] [--shards 1,2,4]
        [--datasets breast-cancer,penguins,diamonds] [--halving-repeats 3] [--candidates 40]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.report import write_section

PROJECT = Path(__file__).resolve().parents[1]
DATASETS = ("breast-cancer", "penguins", "diamonds")

# run_training with search_shards=N in a fresh interpreter (what `slipway run` does), as JSON
RUN = """
import dataclasses, json, sys
from slipway.config import load_settings
from slipway.orchestration import resolve_request, run_training
settings = load_settings()
request = dataclasses.replace(resolve_request(settings), search_shards=int(sys.argv[1]))
result = run_training(settings, request)
print("RUN " + json.dumps({"run_id": result.run_id, "failure": str(result.failure or ""),
                           "log": str(result.log)}))
"""
_STAMP = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task '([^']+)'|Task '([^']+)' finished)"
)
SEARCH_TASKS = ("search-plan", "search-shard", "search")


_EXECUTOR = re.compile(r"\[KFP Executor \d+-\d+-\d+ (\d\d):(\d\d):(\d\d),(\d+) INFO\]: (.*)$")
_ITERATION = re.compile(r"iteration-(\d+)/search-shard/executor_output\.json")


def task_spans(log: Path) -> list[tuple[str, float, float]]:
    """``(task, start, end)`` seconds of every task run in a kfp.local log, in start order.

    kfp.local runs a ``ParallelFor``'s iterations side by side and logs one "finished" line for
    them all, so a shard task is timed by its own executor's lines instead: from "Got
    executor_input" (the interpreter is up; the component's imports come after) to "Wrote
    executor output file", each tied to its iteration by the output path that follows or
    that it names.
    """
    open_runs: dict[str, list[float]] = {}
    shard_start: dict[int, float] = {}
    shard_end: dict[int, float] = {}
    pending: float | None = None
    spans = []
    for line in log.read_text(errors="replace").splitlines():
        executor = _EXECUTOR.search(line)
        iteration = _ITERATION.search(line)
        if executor:
            seconds = _clock(executor[1], executor[2], executor[3]) + int(executor[4]) / 1e3
            if executor[5].startswith("Got executor_input"):
                pending = seconds
            elif executor[5].startswith("Wrote executor output file") and iteration:
                shard_end[int(iteration[1])] = seconds
            continue
        if iteration and pending is not None:
            shard_start.setdefault(int(iteration[1]), pending)
            pending = None
            continue
        m = _STAMP.match(line)
        if not m:
            continue
        pending = None
        seconds = _clock(m[1], m[2], float(m[3]))
        if m[4]:
            open_runs.setdefault(m[4], []).append(seconds)
        elif open_runs.get(m[5]):
            spans.append((m[5], open_runs[m[5]].pop(0), seconds))
    spans = [s for s in spans if s[0] != "search-shard"]
    spans += [("search-shard", shard_start[i], shard_end[i]) for i in sorted(shard_end)]
    return sorted(spans, key=lambda s: s[1])


def _clock(hours: str, minutes: str, seconds: str | float) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def shard_fit_seconds(tracking_uri: str, run_id: str) -> list[float]:
    """Per shard, the seconds its fits and scorings took (its ``shards/shard-<i>.json``)."""
    from slipway.training.fanout import load_shard_results
    from slipway.training.tracking import mlflow_client

    client = mlflow_client(tracking_uri)
    shards = int(client.get_run(run_id).data.params["search.shards"])
    return [
        sum(s.fit_time + s.score_time for s in scores)
        for scores in load_shard_results(client, run_id, shards)
    ]


def one_sharded_run(shards: int, state: Path) -> dict[str, Any]:
    """One pipeline run with ``search_shards=shards`` in a fresh state folder."""
    from slipway.config import load_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env["SLIPWAY_STATE_DIR"] = str(state)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(shards)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    # the line may follow a progress bar's carriage returns on the same line: strip to it
    lines = [line[line.index("RUN {") :] for line in done.stdout.splitlines() if "RUN {" in line]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"search_shards={shards}: the run failed: {tail}")
    result = json.loads(lines[-1].removeprefix("RUN "))
    if result["failure"]:
        raise RuntimeError(f"search_shards={shards}: {result['failure']}")
    spans = [s for s in task_spans(Path(result["log"])) if s[0] in SEARCH_TASKS]
    shard_spans = [s for s in spans if s[0] == "search-shard"]
    by_name = {name: end - start for name, start, end in spans if name != "search-shard"}
    out: dict[str, Any] = {
        "shards": shards,
        "run_wall": wall,
        "search_wall": max(end for _, _, end in spans) - spans[0][1],
        "plan": by_name.get("search-plan"),
        "reduce": by_name["search"],
        "shard_walls": [end - start for _, start, end in shard_spans],
        # do the shard tasks overlap in time (kfp.local starts a ParallelFor's iterations at once)
        "overlapped": any(b[1] < a[2] for a, b in itertools.pairwise(shard_spans)),
    }
    if shards > 1:
        fits = shard_fit_seconds(load_settings(state_dir=state).tracking_uri, result["run_id"])
        out["shard_fits"] = fits
        out["shard_overheads"] = [w - f for w, f in zip(out["shard_walls"], fits, strict=True)]
        # a pod per shard has cores of its own: plan, then the slowest shard's fits plus the
        # overhead a shard pays, then the reduce (here the shards share 2 cores)
        out["cluster_search"] = (
            out["plan"] + max(fits) + statistics.median(out["shard_overheads"]) + out["reduce"]
        )
    return out


def measure_shards(counts: list[int]) -> list[dict[str, Any]]:
    """The default pipeline run once per shard count, each in its own state folder."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="slipway-shards-") as tmp:
        for n in counts:
            run = one_sharded_run(n, Path(tmp) / f"shards-{n}")
            print(
                f"search_shards={n}: run {run['run_wall']:.1f} s, search tasks "
                f"{run['search_wall']:.1f} s, shard tasks {[round(w, 1) for w in run['shard_walls']]}",
                flush=True,
            )
            runs.append(run)
    return runs


def shards_section(runs: list[dict[str, Any]]) -> str:
    """The markdown of the shards part."""
    one = next((r for r in runs if r["shards"] == 1), None)
    lines = [
        "| search_shards | run (s) | search tasks (s) | search-plan (s) | search-shard tasks (s) "
        "| their fits (s) | overhead per shard (s) | reduce `search` (s) | search on a cluster, "
        "estimated (s) |",
        "|" + " --- |" * 9,
    ]
    for r in runs:
        sharded = r["shards"] > 1
        over = r.get("shard_overheads", [])
        cells = [
            str(r["shards"]),
            f"{r['run_wall']:.1f}",
            f"{r['search_wall']:.1f}",
            f"{r['plan']:.1f}" if sharded else "–",
            " + ".join(f"{w:.1f}" for w in r["shard_walls"]) or "–",
            " + ".join(f"{f:.2f}" for f in r.get("shard_fits", [])) or "–",
            f"{sum(over) / len(over):.1f} (max {max(over):.1f})" if over else "–",
            f"{r['reduce']:.1f}",
            f"{r['cluster_search']:.1f}" if sharded else f"{r['search_wall']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if one is not None:
        for r in runs:
            if r["shards"] > 1:
                notes.append(
                    f"- {r['shards']} shards: the search tasks ran {one['search_wall'] / r['search_wall']:.2f}x "
                    "as fast as the one-task search here; estimated on a cluster (a pod per "
                    f"shard): {one['search_wall'] / r['cluster_search']:.2f}x"
                )
    overlapped = any(r["overlapped"] for r in runs)
    overheads = [o for r in runs for o in r.get("shard_overheads", [])]
    if overheads:
        notes.append(
            f"- a shard task costs {statistics.median(overheads):.1f} s beyond its fits "
            f"(median of {len(overheads)}: interpreter and imports, the MLflow store open, the "
            "run lookup, reading and splitting the table, writing its artifact; on 2 shared cores, "
            "so more shards pay more); on EKS add the pod's scheduling and start and an image "
            "pull on a cold node, which kfp.local does not pay"
        )
    notes.append(
        "- kfp.local started the shard tasks at once (they overlapped): on 2 cores at most two "
        "fit at a time, so locally the speed-up is bounded by 2 and the plan and reduce tasks "
        "(two more interpreters) come on top"
        if overlapped
        else "- kfp.local ran the shard tasks one after another: its search time is their sum"
    )
    notes.append(
        "- estimate on a cluster = search-plan + the slowest shard's fits + the median shard "
        "overhead + the reduce; the one-task search's column is as measured"
    )
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def dataset_params(name: str) -> Any:
    """The project's params with ``data/<name>/params.yaml`` merged over (as ``slipway run``)."""
    from slipway.data import merge_params
    from slipway.params import parse_params, read_params_file

    raw = read_params_file(PROJECT / "params.yaml")
    override = PROJECT / "data" / name / "params.yaml"
    if override.exists():
        raw = merge_params(raw, read_params_file(override))
    return parse_params(raw, source=f"params for {name}")


def latest_table(name: str) -> Path:
    """The dataset's latest shipped version (``data/<name>/v<N>.csv``, highest ``N``)."""
    return max((PROJECT / "data" / name).glob("v*.csv"), key=lambda p: int(p.stem[1:]))


def measure_halving(datasets: list[str], repeats: int) -> list[dict[str, Any]]:
    """Grid and halving on each dataset's latest shipped table, in this process.

    Each search runs ``repeats`` times, the two strategies taking turns: its seconds are the
    median (the cores are shared, and HistGradientBoosting's OpenMP threads suffer most when
    they are), its result is the same every time (seeded).
    """
    from slipway.data import load_dataset_spec, load_frame, split_dataset
    from slipway.training.metrics import score_model
    from slipway.training.search import fit_grid_search

    rows = []
    for name in datasets:
        spec = load_dataset_spec(PROJECT / "data" / name / "dataset.yaml")
        params = dataset_params(name)
        table = latest_table(name)
        frame = load_frame(table, spec)
        train, holdout = split_dataset(
            frame, params.search.holdout_fraction, params.search.seed, spec.target
        )
        metric = params.evaluate.primary_metric_for(spec.task)
        timings: dict[str, list[float]] = {"grid": [], "halving": []}
        results: dict[str, Any] = {}
        for _ in range(repeats):
            for strategy in ("grid", "halving"):
                search = params.search.model_copy(update={"strategy": strategy})
                start = time.perf_counter()
                results[strategy] = fit_grid_search(train, spec, search)
                timings[strategy].append(time.perf_counter() - start)
        for strategy in ("grid", "halving"):
            result, seconds = results[strategy], statistics.median(timings[strategy])
            row = {
                "dataset": f"{name} {table.stem}",
                "rows": len(train),
                "strategy": strategy,
                "fits": result.fits,
                "seconds": seconds,
                "runs": [round(t, 2) for t in timings[strategy]],
                "scoring": result.scoring,
                "cv": result.best_cv_score,
                "metric": metric,
                "holdout": score_model(result.best_estimator, holdout, spec)[metric],
                "best": result.best_params,
            }
            print(
                f"{name:<14} {strategy:<8} {row['fits']:>3} fits {seconds:7.2f} s "
                f"{row['runs']}  cv {row['cv']:.4f}  holdout {metric} {row['holdout']:.4f}",
                flush=True,
            )
            rows.append(row)
    return rows


def halving_section(rows: list[dict[str, Any]]) -> str:
    """The markdown of the halving part."""
    lines = [
        "| dataset (training rows) | strategy | fits | seconds (median; runs) | best CV score "
        "| holdout (primary metric) | best candidate |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        best = ", ".join(f"{k}={v}" for k, v in r["best"].items())
        lines.append(
            f"| {r['dataset']} ({r['rows']:,}) | {r['strategy']} | {r['fits']} | "
            f"{r['seconds']:.2f} ({', '.join(f'{t:.2f}' for t in r['runs'])}) | "
            f"{r['scoring']} {r['cv']:.4f} | {r['metric']} "
            f"{r['holdout']:.4f} | {best} |"
        )
    notes = []
    pairs = {}
    for r in rows:
        pairs.setdefault(r["dataset"], {})[r["strategy"]] = r
    for name, p in pairs.items():
        if {"grid", "halving"} <= set(p):
            g, h = p["grid"], p["halving"]
            notes.append(
                f"- {name}: halving fits {h['fits']} of the grid's {g['fits']} in "
                f"{h['seconds'] / g['seconds']:.2f}x its time; holdout {g['metric']} "
                f"{h['holdout']:.4f} against {g['holdout']:.4f}"
            )
    notes.append(
        "- halving counts every (candidate, fold) fit of every round, most of them on a "
        "fraction of the rows (round r on rows / 3^(rounds-1-r)), so it performs more fits "
        "than the grid on these small grids yet fits fewer rows; its best CV score is from "
        "its last round and not comparable with the grid's: the holdout column is the fair "
        "comparison"
    )
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


class CountingClient:
    """An ``MlflowClient`` wrapper that counts the calls made through it, by method."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def log_unbatched(client: Any, experiment_id: str, parent: str, candidates: list, scoring: str):
    """The same child runs with one call per param and per metric (what batching avoids)."""
    from slipway.training.search import describe_params
    from slipway.training.tracking import PARENT_RUN_TAG

    for c in candidates:
        run = client.create_run(
            experiment_id,
            run_name=f"candidate-{c.candidate}",
            tags={PARENT_RUN_TAG: parent, "slipway.candidate": str(c.candidate)},
        )
        params = {"candidate": c.candidate, "shard": "0", **describe_params(c.params)}
        for k, v in params.items():
            client.log_param(run.info.run_id, k, str(v))
        metrics = {
            f"cv_{scoring}_mean": c.mean_score,
            f"cv_{scoring}_std": c.std_score,
            "mean_fit_time_seconds": c.fit_time,
            "rank": float(c.rank),
        }
        for k, v in metrics.items():
            client.log_metric(run.info.run_id, k, float(v))
        client.set_terminated(run.info.run_id, "FINISHED")


def measure_logging(n_candidates: int) -> dict[str, Any]:
    """Child runs for ``n_candidates`` candidates, batched and unbatched, on a SQLite store."""
    from sklearn.linear_model import LogisticRegression

    from slipway.training.search import describe_params
    from slipway.training.shards import CandidateScore
    from slipway.training.tracking import ensure_experiment, log_candidate_runs, mlflow_client

    candidates = [
        CandidateScore(
            candidate=i,
            params={"clf": LogisticRegression(), "clf__C": 10.0 ** (i % 7 - 3)},
            mean_score=0.9 + i / 1e4,
            std_score=0.01,
            rank=n_candidates - i,
            fit_time=0.05,
            shards=(0,),
        )
        for i in range(n_candidates)
    ]
    out: dict[str, Any] = {"candidates": n_candidates}
    with tempfile.TemporaryDirectory(prefix="slipway-logging-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        experiment = ensure_experiment(uri, "bench", f"{tmp}/artifacts")  # the store's schema
        for way in ("batched", "unbatched"):
            client = CountingClient(mlflow_client(uri))
            parent = client.create_run(experiment, run_name=f"parent-{way}").info.run_id
            client.calls.clear()
            start = time.perf_counter()
            if way == "batched":
                log_candidate_runs(
                    client, experiment, parent, candidates, "roc_auc", describe_params
                )
            else:
                log_unbatched(client, experiment, parent, candidates, "roc_auc")
            seconds = time.perf_counter() - start
            out[way] = {
                "seconds": seconds,
                "calls": sum(client.calls.values()),
                "by_method": dict(client.calls),
            }
            print(
                f"{way:<9} {n_candidates} child runs: {out[way]['calls']} calls, "
                f"{seconds * 1000 / n_candidates:.1f} ms per candidate",
                flush=True,
            )
    return out


def logging_section(found: dict[str, Any]) -> str:
    """The markdown of the logging part."""
    n = found["candidates"]
    lines = [
        "| child runs | MLflow calls | calls per candidate | ms per candidate | calls by method |",
        "| --- | --- | --- | --- | --- |",
    ]
    for way in ("batched", "unbatched"):
        r = found[way]
        methods = ", ".join(f"{k} {v}" for k, v in sorted(r["by_method"].items()))
        lines.append(
            f"| {way} ({'log_candidate_runs' if way == 'batched' else 'one call per param and metric'}) "
            f"| {r['calls']} | {r['calls'] / n:.1f} | {r['seconds'] * 1000 / n:.1f} | {methods} |"
        )
    b, u = found["batched"], found["unbatched"]
    return (
        "\n".join(lines) + f"\n\n- {n} candidates on a local SQLite store: batching makes "
        f"{u['calls'] / b['calls']:.1f}x fewer calls and is {u['seconds'] / b['seconds']:.1f}x "
        "faster; against a tracking server each call is also a round trip"
    )


def main() -> None:
    """Measure the parts asked for and write the ``search`` section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", default="shards,halving,logging")
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--halving-repeats", type=int, default=3)
    args = parser.parse_args()
    parts = args.parts.split(",")
    body = [
        "## The search: shards, halving, child-run logging\n",
        f"Command: `uv run python -m bench.search --parts {args.parts} --shards {args.shards} "
        f"--datasets {args.datasets} --halving-repeats {args.halving_repeats} --candidates "
        f"{args.candidates}` (run by `make bench`).\n",
    ]
    if "shards" in parts:
        runs = measure_shards([int(n) for n in args.shards.split(",")])
        body += [
            "### The sharded search under kfp.local (default dataset and grid: 8 candidates x 5 "
            "folds = 40 fits)\n",
            "Each row is one `slipway run` (compiled pipeline) in a fresh state folder; task "
            "seconds are from kfp.local's log, a shard's fits from its `shards/shard-<i>.json` "
            "(fit and score seconds of its folds).\n",
            shards_section(runs) + "\n",
        ]
    if "halving" in parts:
        rows = measure_halving(args.datasets.split(","), args.halving_repeats)
        body += [
            "### Halving versus grid on the shipped datasets\n",
            "Each dataset's own params (`params.yaml` with `data/<name>/params.yaml` merged "
            "over), its latest shipped table, the fixed holdout split; one process, `n_jobs` as "
            "in params.yaml; the strategies take turns, each run "
            f"{args.halving_repeats} times. `halving` is `HalvingGridSearchCV` (factor 3, last "
            "round on all rows).\n",
            halving_section(rows) + "\n",
        ]
    if "logging" in parts:
        found = measure_logging(args.candidates)
        body += [
            "### Child-run logging (one MLflow run per candidate)\n",
            logging_section(found) + "\n",
        ]
    print(write_section("search", "\n".join(body)))


if __name__ == "__main__":
    main()
