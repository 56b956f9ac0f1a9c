"""The guard's reconcile step against a fake Deployment and a fake Prometheus.

The rollback itself (rollout undo, registry, audit) runs against the real control plane in
tests/integration/test_guard_on_k8s.py; here: windows, resuming from annotations, pausing, dry
run, checks that Prometheus could not answer, and the refusal to return to a rejected version.
"""

from __future__ import annotations

import copy
from typing import Any

from prometheus_client import CollectorRegistry

from slipway.config import load_settings
from slipway.guard.metrics import GuardMetrics
from slipway.guard.policy import GuardPolicy, KpiCheck
from slipway.guard.prometheus import PrometheusQueryError, Sample
from slipway.guard.runner import Guard, GuardOptions
from slipway.guard.state import PAUSED, REJECTED, WINDOW, decode_window, encode_rejected

V1, V2, V3 = (f"v{n}-20260101-0a1b2c3d" for n in (1, 2, 3))
ERRORS = KpiCheck("http-5xx-ratio", "errors by (version)", 0.05, "GreaterThanThreshold", 2)
POLICY = GuardPolicy((ERRORS,), "traffic by (version)", 60, 5, 10)


class FakeCluster:
    namespace = "slipway"

    def __init__(self, version: str = V2, revision: int = 2) -> None:
        self.patches: list[dict[str, Any]] = []
        self.annotations: dict[str, str] = {}
        self.history = [(1, V1), (revision, version)]
        self.set(version, revision)

    def set(self, version: str, revision: int) -> None:
        self.annotations["deployment.kubernetes.io/revision"] = str(revision)
        self.version = version

    def get_deployment(self) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "slipway-server", "annotations": copy.deepcopy(self.annotations)},
            "spec": {"template": {"spec": {"containers": [
                {"name": "server", "env": [{"name": "MODEL_VERSION", "value": self.version}]}
            ]}}},
        }  # fmt: skip

    def patch_annotations(self, annotations: dict[str, str]) -> None:
        self.patches.append(annotations)
        self.annotations.update(annotations)

    def revisions(self) -> list[tuple[int, str]]:
        return list(self.history)


class FakePrometheus:
    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}
        self.down = False

    def query(self, expr: str) -> list[Sample]:
        if self.down:
            raise PrometheusQueryError("Prometheus at http://prom is unreachable")
        value = self.values.get(expr.split()[0])
        return (
            [] if value is None else [Sample({"version": V2}, value), Sample({"version": V1}, 0.0)]
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path, dry_run: bool = False, cluster: FakeCluster | None = None):
    cluster = cluster or FakeCluster()
    prom, clock = FakePrometheus(), Clock()
    metrics = GuardMetrics(CollectorRegistry(), dry_run)
    settings = load_settings(state_dir=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/none.db")
    guard = Guard(
        settings, POLICY, cluster, prom, registry=NoRegistry(), metrics=metrics,
        options=GuardOptions(dry_run=dry_run), clock=clock,
    )  # fmt: skip
    return guard, cluster, prom, clock, metrics


class NoRegistry:
    def search_model_versions(self, *_: Any) -> list[Any]:
        return []


def sample(metrics: GuardMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_new_revision_starts_a_window_kept_in_annotations_and_resumed(tmp_path) -> None:
    guard, cluster, prom, clock, metrics = make(tmp_path)
    prom.values = {"traffic": 3.0, "errors": 0.5}
    report = guard.check()
    assert report.action == "started, wait"
    window = decode_window(cluster.annotations)
    assert (window.revision, window.version, window.failures) == (2, V2, {"http-5xx-ratio": 1})
    assert sample(metrics, "slipway_guard_windows_started_total") == 1

    # a new guard process (restart) resumes the same window: the second failure decides
    fresh, *_ = make(tmp_path, cluster=cluster)
    fresh.prometheus, fresh.clock = prom, clock
    cluster.history = [(2, V2)]  # nothing older to return to: blocked, not rolled back
    clock.now += 5
    report = fresh.check()
    assert report.action == "rollback"
    window = decode_window(cluster.annotations)
    assert window.verdict == "blocked"
    assert window.failures == {"http-5xx-ratio": 2}
    assert "every older kept revision serves a version the guard rejected" in window.detail
    assert fresh.check().action == "closed"  # one verdict per revision, nothing more


def test_never_returns_to_a_version_the_guard_rejected(tmp_path) -> None:
    cluster = FakeCluster(version=V3, revision=3)
    cluster.history = [(1, V1), (2, V2), (3, V3)]
    cluster.annotations[REJECTED] = encode_rejected([V1], V2)
    guard, cluster, prom, clock, _ = make(tmp_path, cluster=cluster)
    prom.values = {"traffic": 3.0, "errors": 0.5}
    # FakePrometheus labels its series v2; serve the failing value for v3
    prom.query = lambda expr: [Sample({"version": V3}, prom.values[expr.split()[0]])]
    guard.check()
    clock.now += 5
    guard.check()
    assert decode_window(cluster.annotations).verdict == "blocked"


def test_pause_annotation_stops_all_checks(tmp_path) -> None:
    guard, cluster, prom, _, _ = make(tmp_path)
    cluster.annotations[PAUSED] = "true"
    prom.down = True  # would fail if queried
    assert guard.check().action == "paused"
    assert cluster.patches == []


def test_dry_run_reports_and_writes_nothing(tmp_path) -> None:
    guard, cluster, prom, clock, metrics = make(tmp_path, dry_run=True)
    prom.values = {"traffic": 3.0, "errors": 0.5}
    guard.check()
    clock.now += 5
    report = guard.check()
    assert report.action == "rollback"
    assert report.window.verdict == "would-roll-back"
    assert cluster.patches == []
    assert WINDOW not in cluster.annotations
    assert sample(metrics, "slipway_guard_verdicts_total", verdict="would-roll-back") == 1
    assert sample(metrics, "slipway_guard_dry_run") == 1
    assert guard.check().action == "closed"


def test_prometheus_down_counts_an_error_and_no_failure(tmp_path) -> None:
    guard, cluster, prom, clock, metrics = make(tmp_path)
    prom.down = True
    for _ in range(5):
        report = guard.check()
        clock.now += 5
    assert report.action == "error"
    assert "unreachable" in report.detail
    assert decode_window(cluster.annotations).failures == {}
    assert sample(metrics, "slipway_guard_checks_total", result="error") == 5
    assert sample(metrics, "slipway_guard_last_check_timestamp_seconds") == 0


def test_a_version_without_traffic_ends_no_traffic(tmp_path) -> None:
    guard, cluster, _, clock, metrics = make(tmp_path)
    for _ in range(13):
        report = guard.check()
        clock.now += 5
    assert report.action == "no-traffic"
    assert decode_window(cluster.annotations).verdict == "no-traffic"
    assert sample(metrics, "slipway_guard_verdicts_total", verdict="no-traffic") == 1
    assert sample(metrics, "slipway_guard_last_check_timestamp_seconds") == clock.now - 5


class WatchingCluster(FakeCluster):
    """Its first watch fails with 410 Gone, the second shows our own patch, then a new revision."""

    def __init__(self, stop) -> None:
        super().__init__()
        self.stop, self.watches, self.lists = stop, [], 0
        self.annotations["x"] = "1"

    def get_deployment(self) -> dict[str, Any]:
        self.lists += 1
        live = super().get_deployment()
        live["metadata"]["resourceVersion"] = str(10 * self.lists)
        return live

    def watch(self, resource_version, timeout_s):
        from kubernetes.client.exceptions import ApiException

        self.watches.append(resource_version)
        if len(self.watches) == 1:
            raise ApiException(status=410, reason="Gone")
        own = super().get_deployment()
        own["metadata"]["resourceVersion"] = "21"
        own["metadata"]["annotations"][WINDOW] = "{}"
        yield "MODIFIED", own  # the guard's own annotation patch: no wake-up
        assert not self.woke.is_set()
        new = super().get_deployment()
        new["metadata"]["resourceVersion"] = "22"
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
        yield "MODIFIED", new
        self.stop.set()


def test_watch_lists_again_after_410_and_wakes_only_on_a_new_revision(tmp_path) -> None:
    import threading

    stop, wake = threading.Event(), threading.Event()
    cluster = WatchingCluster(stop)
    cluster.woke = wake
    guard, *_ = make(tmp_path, cluster=cluster)
    guard._watch(stop, wake)
    assert cluster.watches == ["10", "20"]  # 410 Gone: listed again, watched from the new version
    assert cluster.lists == 2
    assert wake.is_set()


def test_a_check_that_changes_nothing_a_restart_needs_writes_nothing(tmp_path) -> None:
    guard, cluster, prom, clock, _ = make(tmp_path)
    prom.values = {"traffic": 3.0, "errors": 0.0}
    guard.check()  # starts the window, then records traffic_seen
    written = len(cluster.patches)
    for _ in range(3):
        clock.now += 5
        assert guard.check().action == "wait"
    # every annotation change bumps the Deployment's generation: no write per check
    assert len(cluster.patches) == written
    prom.values["errors"] = 0.5
    clock.now += 5
    guard.check()
    assert len(cluster.patches) == written + 1
    assert decode_window(cluster.annotations).failures == {"http-5xx-ratio": 1}
