"""Benchmark of `slipway guard`: bad deploys rolled back, healthy ones left alone, and how fast.

A real control plane (tests/support/k8s.py, the fake kubelet marking pods Ready), MLflow on
SQLite with four registered versions (two good; one whose model raises on every prediction so
the server answers 500; one served by a process whose every prediction takes 0.6 s longer,
``tests.support.slow_serve``), one real ``slipway serve`` per version, Debian's real Prometheus
scraping them every 5 s, and the guard's real loop (``Guard.run``: watch + checks every 5 s,
the catalog's KPIs and consecutive counts). Rounds alternate: deploy a bad version (the 500 one
and the slow one in turn; the guard must roll it back), deploy the other good version (its
window must pass, no rollback).

Latency of a bad round: from the first Prometheus scrape that holds an answer of the bad
version (every answer of a bad version is bad: a 500, or a slow one) to the moment both the
Deployment serves the good version again and the registry alias ``champion`` points back at it. Results go to docs/benchmarks.md between
``<!-- guard:start -->`` and ``<!-- guard:end -->``.

Run: uv run --no-sync python -m bench.guard [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from bench.report import write_section
from slipway.config import load_settings
from slipway.guard import (
    DeploymentApi,
    Guard,
    GuardOptions,
    PrometheusClient,
    load_api_client,
    policy_from_catalog,
)
from slipway.guard.state import decode_window
from slipway.monitoring import load_kpi_catalog
from slipway.packaging.store import LocalModelStore
from slipway.registry import (
    CHAMPION,
    TAG_VERSION_CODE,
    get_alias_version,
    get_client,
    mlflow_tracking_uri,
)
from slipway.release import ReleaseEvent, served_version, sync_registry
from slipway.versions import make_version_code
from tests.support.guard import (
    SLOW_S,
    Traffic,
    model_server,
    package,
    prometheus,
    raising_model,
    server_deployment,
)
from tests.support.k8s import ensure_namespace, local_cluster
from tests.support.k8s_pods import FakeKubelet
from tests.support.serving import trained

REPO = Path(__file__).resolve().parents[1]
SCRAPE_S = 5
INTERVAL_S = 5.0
BAKE_S = 30.0
#: Seconds between the end of a bad round and the next of the same bad version: the guard's
#: expressions look at the last minute, so without the pause a bad round could be decided by
#: the previous one's answers (each version has its own server, so only its own past counts).
QUIET_S = 70.0
GRACE_S = 15.0
NAMESPACE = "guard-bench"
MODEL_NAME = "slipway-bench"


def _deployment(version: str) -> dict[str, Any]:
    return server_deployment(NAMESPACE, version, replicas=2)


class Bench:
    """The world of one benchmark run."""

    def __init__(self, tmp: Path, cluster: Any) -> None:
        import mlflow
        import mlflow.sklearn
        from sklearn.linear_model import LogisticRegression

        self.cluster = cluster
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        self.client = get_client(uri)
        with mlflow_tracking_uri(uri):
            experiment = mlflow.create_experiment("bench", artifact_location=str(tmp / "art"))
            with mlflow.start_run(experiment_id=experiment) as run:
                model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
                info = mlflow.sklearn.log_model(model, name="m", pip_requirements=["scikit-learn"])
            self.client.create_registered_model(MODEL_NAME)
            store = LocalModelStore(tmp / "store")
            self.codes: list[str] = []
            for n in (1, 2, 3, 4):
                self.client.create_model_version(MODEL_NAME, info.model_uri, run_id=run.info.run_id)
                code = make_version_code(n, run.info.run_id)
                self.client.set_model_version_tag(MODEL_NAME, str(n), TAG_VERSION_CODE, code)
                store.put_package(MODEL_NAME, code, {"model.skops": b"x", "manifest.json": b"{}"})
                self.codes.append(str(code))
        self.settings = load_settings(
            state_dir=tmp / "state",
            project_dir=REPO,
            tracking_uri=uri,
            model_name=MODEL_NAME,
            model_store_url=str(tmp / "store"),
            efs_root=tmp / "efs-not-mounted",
            namespace=NAMESPACE,
            git_commit="bench",
        )
        api_client, context = load_api_client(str(cluster.kubeconfig))
        self.api = DeploymentApi(api_client, namespace=NAMESPACE, context=context)

    def served(self) -> str:
        return str(served_version(self.api.get_deployment()).version)

    def champion(self) -> str | None:
        found = get_alias_version(self.client, MODEL_NAME, CHAMPION)
        return str(found.version) if found is not None else None

    def deploy(self, version: str) -> None:
        """What `slipway deploy` does once the overlay is written: apply, await, sync."""
        live = self.api.find_deployment()
        before = served_version(live).version if live else None
        self.cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "--field-manager=bench", "-f", "-",
            input=yaml.safe_dump(_deployment(version)),
        )  # fmt: skip
        self.api.rollout_status(timeout="60s")
        served = served_version(self.api.get_deployment())
        event = ReleaseEvent(
            "deploy", served.version, before, f"bench deploy {version}", served.revision,
            "prod", self.api.context, "bench",
        )  # fmt: skip
        sync_registry(self.client, self.settings, event, resume="rerun the benchmark")


class FirstBadScrape(threading.Thread):
    """Polls Prometheus until the bad server's answer count exceeds ``baseline``; notes when."""

    def __init__(self, prom: PrometheusClient, instance: str, baseline: float) -> None:
        super().__init__(daemon=True)
        self.prom, self.instance, self.baseline = prom, instance, baseline
        self.at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.at is None:
            if _answers(self.prom, self.instance) > self.baseline:
                self.at = time.monotonic()
            self.stop.wait(0.1)


def _answers(prom: PrometheusClient, instance: str) -> float:
    """Inference answers of the server at ``instance`` in the last scrape (all bad, for a bad one)."""
    found = prom.query(
        f'sum(slipway_http_requests_total{{instance="{instance}",route="/v2/models/{{name}}/infer"}})'
    )
    return found[0].value if found else 0.0


def _rollbacks(guard: Guard) -> float:
    """slipway_guard_rollbacks_total over every KPI."""
    return sum(
        sample.value
        for family in guard.metrics.registry.collect()
        if family.name == "slipway_guard_rollbacks"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def _rollbacks_by_kpi(guard: Guard) -> dict[str, int]:
    """slipway_guard_rollbacks_total per KPI label."""
    return {
        sample.labels["kpi"]: int(sample.value)
        for family in guard.metrics.registry.collect()
        if family.name == "slipway_guard_rollbacks"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def run(rounds: int) -> dict[str, Any]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-guard-")))
        (tmp / "k8s").mkdir()
        cluster = stack.enter_context(local_cluster(tmp / "k8s"))
        kubelet = FakeKubelet(cluster).start()
        stack.callback(kubelet.stop)
        ensure_namespace(cluster, NAMESPACE, {})
        bench = Bench(tmp, cluster)
        good_a, good_b, failing, slow = bench.codes
        files = {
            good_a: package(trained(), good_a),
            good_b: package(trained("random_forest"), good_b),
            failing: package(raising_model(), failing),
            slow: package(trained(), slow),
        }
        servers = {
            v: stack.enter_context(model_server(tmp, v, f, delay_s=SLOW_S if v == slow else 0))
            for v, f in files.items()
        }
        prom_url = stack.enter_context(prometheus(tmp, list(servers.values()), scrape_s=SCRAPE_S))
        prom = PrometheusClient(prom_url)
        bench.deploy(good_a)
        stack.enter_context(Traffic(bench.served, servers))
        policy = policy_from_catalog(load_kpi_catalog(REPO / "monitoring" / "kpis.yaml"))
        policy = policy.with_times(
            interval_s=INTERVAL_S, grace_period_s=GRACE_S, bake_window_s=BAKE_S
        )
        guard = Guard(
            bench.settings, policy, bench.api, prom, registry=bench.client,
            options=GuardOptions(rollout_timeout="60s"),
        )  # fmt: skip
        stop = threading.Event()
        loop = threading.Thread(target=guard.run, args=(stop,), daemon=True)
        loop.start()
        stack.callback(lambda: (stop.set(), loop.join(timeout=10)))
        time.sleep(BAKE_S + INTERVAL_S)  # the first version's own window

        latencies, rolled_back, healthy_rollbacks, healthy_passed = [], 0, 0, 0
        by_kpi: dict[str, list[float]] = {}
        last_bad: dict[str, float] = {}
        current = good_a
        for i in range(rounds):
            bad = (failing, slow)[i % 2]
            kind = "5xx" if bad == failing else "slow"
            # this bad version's answers of its previous round must have left the 1 m windows
            time.sleep(max(0.0, last_bad.get(bad, 0.0) + QUIET_S - time.monotonic()))
            # a bad deploy: measured from its first scrape to Deployment and alias reverted
            bad_instance = servers[bad].removeprefix("http://")
            baseline, before = _answers(prom, bad_instance), _rollbacks(guard)
            poller = FirstBadScrape(prom, bad_instance, baseline)
            poller.start()
            started = time.monotonic()
            bench.deploy(bad)
            applied = time.monotonic() - started
            good_registry = str(bench.codes.index(current) + 1)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                reverted = bench.served() == current and bench.champion() == good_registry
                if reverted and poller.at is not None:
                    latencies.append(time.monotonic() - poller.at)
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"bad round {i + 1}: not reverted within 180 s")
            poller.stop.set()
            # the guard counts its rollback once the audit record is written, just after the
            # alias moved back
            counted = time.monotonic() + 30
            while _rollbacks(guard) <= before and time.monotonic() < counted:
                time.sleep(0.1)
            rolled_back += int(_rollbacks(guard) > before)
            last_bad[bad] = time.monotonic()
            by_kpi.setdefault(kind, []).append(latencies[-1])
            print(
                f"bad {i + 1}/{rounds} ({kind}): deploy took {applied:.1f} s; reverted "
                f"{latencies[-1]:.1f} s after the first bad scrape"
            )
            # a healthy deploy: its window must pass without a rollback
            current = good_b if current == good_a else good_a
            total = _rollbacks(guard)
            bench.deploy(current)
            revision = served_version(bench.api.get_deployment()).revision
            deadline = time.monotonic() + BAKE_S + 60
            while time.monotonic() < deadline:
                window = decode_window(bench.api.get_deployment()["metadata"].get("annotations"))
                if window and window.revision == revision and not window.open:
                    healthy_passed += window.verdict == "passed"
                    break
                time.sleep(0.5)
            # a rollback decided later than the window's end would still count against it
            time.sleep(INTERVAL_S)
            after = _rollbacks(guard)
            healthy_rollbacks += int(after > total)
            print(f"healthy {i + 1}/{rounds}: {window.verdict if window else 'no window'}")
    latencies.sort()
    return {
        "rounds": rounds,
        "bad_rolled_back": rolled_back,
        "healthy_rollbacks": healthy_rollbacks,
        "healthy_passed": healthy_passed,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "max_s": latencies[-1],
        "p50_by_kind_s": {k: statistics.median(v) for k, v in sorted(by_kpi.items())},
        "rollbacks_by_kpi": _rollbacks_by_kpi(guard),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="bad and healthy deploys, each")
    args = parser.parse_args()
    result = run(args.rounds)
    print(json.dumps(result, indent=2))
    n = result["rounds"]
    section = (
        "## slipway guard: automatic rollback\n\n"
        f"`python -m bench.guard --rounds {n}`: a real control plane, MLflow on SQLite, one real "
        f"`slipway serve` per version, Debian's Prometheus scraping every {SCRAPE_S} s, the "
        f"guard's loop checking every {INTERVAL_S:g} s with the catalog's KPIs "
        f"(http-5xx-ratio and p99-latency: 3 consecutive checks each). Rounds alternate a "
        f"deploy of a bad version (in turn one that answers 500 and one whose every prediction "
        f"takes {SLOW_S:g} s longer) and a deploy of a healthy one (bake window {BAKE_S:g} s).\n\n"
        "| what | result |\n| --- | --- |\n"
        f"| bad deploys rolled back | {result['bad_rolled_back']} / {n} |\n"
        f"| healthy deploys rolled back | {result['healthy_rollbacks']} / {n} "
        f"({result['healthy_passed']} windows passed) |\n"
        "| first bad scrape → Deployment **and** `champion` alias reverted, p50 | "
        f"{result['p50_s']:.1f} s |\n"
        f"| same, p95 | {result['p95_s']:.1f} s (target ≤ 60 s) |\n"
        f"| same, max | {result['max_s']:.1f} s |\n"
        + "".join(
            f"| same, p50 of the {kind} version | {value:.1f} s |\n"
            for kind, value in result["p50_by_kind_s"].items()
        )
        + "| rollbacks by KPI (audit reason) | "
        + ", ".join(f"{k}: {v}" for k, v in sorted(result["rollbacks_by_kpi"].items()))
        + " |\n"
    )
    print(write_section("guard", section))


if __name__ == "__main__":
    main()
