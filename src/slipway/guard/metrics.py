"""The guard's own metrics (``slipway_guard_*``); the registry is injected (tests use a fresh one).

The alert rules on them (guard down, guard not checking) are in
``manifests/monitoring/guard-prometheusrule.yaml``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["CHECK_RESULTS", "GuardMetrics"]

#: ``result`` label of ``slipway_guard_checks_total``.
CHECK_RESULTS = ("passing", "failing", "error")


class GuardMetrics:
    """The guard's metrics, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, dry_run: bool = False) -> None:
        self.registry = registry
        self.windows_started = Counter(
            "slipway_guard_windows_started",
            "Bake windows started (one per new pod-template revision).",
            registry=registry,
        )
        self.checks = Counter(
            "slipway_guard_checks",
            "KPI checks of an open window, by result (error: Prometheus did not answer).",
            ["result"],
            registry=registry,
        )
        self.rollbacks = Counter(
            "slipway_guard_rollbacks",
            "Rollbacks made by the guard, by the KPI that decided them.",
            ["kpi"],
            registry=registry,
        )
        self.verdicts = Counter(
            "slipway_guard_verdicts",
            "Windows closed, by verdict (passed, no-traffic, rolled-back, blocked, ...).",
            ["verdict"],
            registry=registry,
        )
        self.errors = Counter(
            "slipway_guard_errors",
            "Reconcile steps that failed (Kubernetes API, Prometheus, registry, alarm queue; "
            "alarm-message: an unreadable message dropped from the queue).",
            ["source"],
            registry=registry,
        )
        self.last_check = Gauge(
            "slipway_guard_last_check_timestamp_seconds",
            "When the guard last completed a reconcile step (read the Deployment, checked).",
            registry=registry,
        )
        self.window_open = Gauge(
            "slipway_guard_window_open",
            "1 while a bake window is open.",
            registry=registry,
        )
        self.dry_run = Gauge(
            "slipway_guard_dry_run",
            "1 when the guard only reports (--dry-run).",
            registry=registry,
        )
        self.dry_run.set(1 if dry_run else 0)
        for result in CHECK_RESULTS:
            self.checks.labels(result)
        for source in ("kubernetes", "prometheus", "registry", "alarms", "alarm-message"):
            self.errors.labels(source)
