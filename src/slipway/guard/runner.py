"""The guard's reconcile step and its watch loop.

:meth:`Guard.check` is one step: read the Deployment, start a window when its revision is new,
query Prometheus for the window's version (and read the CloudWatch alarms' SQS queue, when
there is one: :mod:`slipway.guard.alarms`), decide (:mod:`slipway.guard.window`) and act:
roll back through :func:`slipway.release.rollback_deployment` (the same path as
``slipway rollback``: undo, ``champion`` alias back, champion marker, audit record), tag the
registry version ``verified`` when the window passes, and write the window back to the
Deployment's annotations. :meth:`Guard.run` repeats it every interval and right away when a
watch of the Deployment (resourceVersion, reconnecting) shows a new revision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from slipway.config import Settings
from slipway.errors import ConfigError, KubectlError, RegistryError, SlipwayError
from slipway.guard.alarms import AlarmQueue, AlarmQueueError
from slipway.guard.cluster import DeploymentApi
from slipway.guard.metrics import GuardMetrics
from slipway.guard.policy import GuardPolicy, KpiCheck
from slipway.guard.prometheus import PrometheusClient, PrometheusQueryError, Sample
from slipway.guard.state import (
    PAUSED,
    REJECTED,
    RESTORED,
    WINDOW,
    decode_rejected,
    decode_window,
    encode_rejected,
    encode_window,
    is_paused,
    restored_revision,
)
from slipway.guard.window import (
    Decision,
    Observation,
    WindowState,
    choose_target,
    close,
    evaluate,
    start_window,
)
from slipway.release import (
    REVISION_ANNOTATION,
    RollbackRequest,
    rollback_deployment,
    served_version,
)

__all__ = ["ACTOR", "TAG_REJECTED", "TAG_VERIFIED", "CheckReport", "Guard", "GuardOptions"]

log = logging.getLogger(__name__)

#: The actor of the guard's audit records.
ACTOR = "slipway-guard"
#: Registry version tags the guard writes.
TAG_VERIFIED = "verified"
TAG_REJECTED = "guard_rejected"


@dataclass(frozen=True)
class GuardOptions:
    """How the guard acts.

    Attributes:
        env: The overlay name recorded in the audit trail (``dev`` or ``prod``).
        dry_run: Decide and report only: no rollback, no tag, no annotation written.
        rollout_timeout: How long a rollback waits for the rollout (``5m``).
        actor: Who the audit records name.
    """

    env: str = "prod"
    dry_run: bool = False
    rollout_timeout: str = "5m"
    actor: str = ACTOR

    def __post_init__(self) -> None:
        if self.env not in ("dev", "prod"):
            raise ConfigError(f"--env {self.env!r} is not one of dev, prod")


@dataclass(frozen=True)
class CheckReport:
    """What one :meth:`Guard.check` saw and did.

    Attributes:
        action: ``paused``, ``started`` + the decision's action (``wait``, ``rollback``, ...),
            ``closed`` (the window has its verdict), ``error`` (Prometheus did not answer).
        detail: One line for the log.
        window: The window after the step (``None`` when paused).
    """

    action: str
    detail: str
    window: WindowState | None = None


def _pick(samples: list[Sample], version: str, check: KpiCheck | None) -> float | None:
    values = [s.value for s in samples if s.labels.get("version") == version]
    if not values:
        return None
    if check is None:
        return sum(values)
    # several series for one version (should not happen with `by (version)`): the worst one
    return min(values) if check.operator.startswith("<") else max(values)


class Guard:
    """Watches one Deployment's new revisions and rolls bad ones back.

    Args:
        settings: Model name, registry and store (for the rollback and the tags).
        policy: The checks and times (:func:`slipway.guard.policy_from_catalog`).
        cluster: The Deployment through the Kubernetes API.
        prometheus: Where the checks query; ``None`` when the KPIs come from CloudWatch alarms
            only (``alarms``).
        registry: An MLflow client (default: one for ``settings.tracking_uri``, made on first use).
        metrics: The guard's metrics.
        options: env, dry run, rollout timeout, actor.
        clock: Seconds since the epoch (tests pass a fake).
        alarms: The SQS queue of the KPIs' CloudWatch alarm notifications (optional): a KPI
            whose alarm went into ALARM during a window fails its checks.

    Raises:
        ConfigError: neither ``prometheus`` nor ``alarms`` is given: nothing to check.
    """

    def __init__(  # noqa: PLR0913 - the collaborators, all keyword-only after the first four
        self,
        settings: Settings,
        policy: GuardPolicy,
        cluster: DeploymentApi,
        prometheus: PrometheusClient | None,
        *,
        registry: Any = None,
        metrics: GuardMetrics | None = None,
        options: GuardOptions | None = None,
        clock: Callable[[], float] = time.time,
        alarms: AlarmQueue | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry

        if prometheus is None and alarms is None:
            raise ConfigError(
                "the guard has nothing to check: give it Prometheus (--prometheus-url) or the "
                "SQS queue of the KPIs' CloudWatch alarms (--alarm-queue-url), or both"
            )

        self.settings = settings
        self.policy = policy
        self.cluster = cluster
        self.prometheus = prometheus
        self._registry = registry
        self.options = options or GuardOptions()
        self.metrics = metrics or GuardMetrics(CollectorRegistry(), self.options.dry_run)
        self.clock = clock
        self.alarms = alarms
        if alarms is not None and alarms.on_invalid is None:
            alarms.on_invalid = lambda _: self.metrics.errors.labels("alarm-message").inc()
        self._dry_window: WindowState | None = None  # a dry run keeps its window in memory

    @property
    def registry(self) -> Any:
        """The MLflow client (made on first use)."""
        if self._registry is None:
            from slipway.registry import get_client

            self._registry = get_client(self.settings.tracking_uri)
        return self._registry

    # ------------------------------------------------------------------ one step

    def check(self) -> CheckReport:
        """One reconcile step (see the module docstring).

        Raises:
            KubectlError: the Deployment could not be read or patched.
        """
        now = self.clock()
        try:
            report = self._check(now)
        except KubectlError:
            self.metrics.errors.labels("kubernetes").inc()
            raise
        if report.action != "error":
            self.metrics.last_check.set(now)
        self.metrics.window_open.set(1 if report.window is not None and report.window.open else 0)
        log.info("guard: %s: %s", report.action, report.detail)
        return report

    def _check(self, now: float) -> CheckReport:
        deployment = self.cluster.get_deployment()
        annotations = deployment["metadata"].get("annotations") or {}
        if is_paused(annotations):
            return CheckReport("paused", "guard.slipway.io/paused is true: nothing checked")
        served = served_version(deployment)
        if served.revision is None:
            return CheckReport("waiting", f"{REVISION_ANNOTATION} not set yet")
        window = self._dry_window if self.options.dry_run else decode_window(annotations)
        started = window is None or window.revision != served.revision
        if started:
            restored = restored_revision(annotations) == served.revision
            window = start_window(served.revision, str(served.version), now, restored=restored)
            self.metrics.windows_started.inc()
            self._save(window)
            log.info(
                "guard: window started for revision %s (%s)%s",
                window.revision,
                window.version,
                ", restored by the guard: watched only" if restored else "",
            )
        assert window is not None
        if not window.open:
            return CheckReport("closed", f"revision {window.revision}: {window.verdict}", window)
        try:
            observation = self._observe(window, now)
        except PrometheusQueryError as e:
            self.metrics.checks.labels("error").inc()
            self.metrics.errors.labels("prometheus").inc()
            return CheckReport("error", str(e), window)
        except AlarmQueueError as e:  # only without Prometheus: nothing was checked
            self.metrics.checks.labels("error").inc()
            return CheckReport("error", str(e), window)
        before = window
        window, decision = evaluate(window, self.policy, observation)
        failing = any(window.failures.get(c.name, 0) for c in self.policy.checks)
        self.metrics.checks.labels("failing" if failing else "passing").inc()
        window = self._act(window, decision, annotations, before)
        prefix = "started, " if started else ""
        return CheckReport(prefix + decision.action, decision.reason or _counts(window), window)

    def _observe(self, window: WindowState, now: float) -> Observation:
        alarms = self._firing(window.started_at)
        if self.prometheus is None:  # CloudWatch only: no traffic, no values, alarms decide
            return Observation(now, None, {}, alarms)
        version = window.version
        traffic = _pick(self.prometheus.query(self.policy.traffic_expr), version, None)
        values = {
            check.name: _pick(self.prometheus.query(check.expr), version, check)
            for check in self.policy.checks
        }
        return Observation(now, traffic, values, alarms)

    def _firing(self, since: float) -> dict[str, str]:
        """Rollback KPIs whose CloudWatch alarm went into ALARM since ``since`` (the queue read)."""
        if self.alarms is None:
            return {}
        try:
            self.alarms.poll()
        except AlarmQueueError as e:
            self.metrics.errors.labels("alarms").inc()
            if self.prometheus is None:
                raise
            # Prometheus still answers: check with it, and with the alarm states read before
            log.error("guard: %s", e)
        return self.alarms.firing(since)

    # ------------------------------------------------------------------ acting

    def _act(
        self,
        window: WindowState,
        decision: Decision,
        annotations: dict[str, str],
        before: WindowState,
    ) -> WindowState:
        if decision.action == "rollback":
            return self._roll_back(window, decision, annotations)
        if decision.action == "report":
            window = close(window, "reported", decision.reason)
        elif decision.action == "pass":
            window = self._verify(window)
        if not window.open:
            self.metrics.verdicts.labels(window.verdict).inc()
        elif (window.failures, window.traffic_seen) == (before.failures, before.traffic_seen):
            # nothing a restart needs changed: no write. Every change of a Deployment's
            # annotations bumps its metadata.generation, and `kubectl rollout status` (and so
            # `slipway deploy`) waits for the controller to observe each one
            return window
        self._save(window)
        return window

    def _verify(self, window: WindowState) -> WindowState:
        if self.options.dry_run:
            return window
        from slipway.release import find_registry_version

        name = self.settings.model_name
        try:
            found = find_registry_version(self.registry, name, window.version)
            stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            for key, value in (
                (TAG_VERIFIED, "true"),
                ("verified_at", stamp),
                ("verified_revision", str(window.revision)),
            ):
                self.registry.set_model_version_tag(name, str(found.version), key, value)
        except Exception as e:  # registry down or version unregistered: the verdict stands
            self.metrics.errors.labels("registry").inc()
            return replace(
                window, detail=f"{window.detail}; registry not tagged verified: {e}"[:500]
            )
        return window

    def _roll_back(
        self, window: WindowState, decision: Decision, annotations: dict[str, str]
    ) -> WindowState:
        reason = decision.reason
        if self.options.dry_run:
            window = close(window, "would-roll-back", f"dry run: {reason}")
            self.metrics.verdicts.labels(window.verdict).inc()
            self._save(window)
            return window
        rejected = set(decode_rejected(annotations)) | self._registry_rejected()
        target = choose_target(
            window.revision, self.cluster.revisions(), rejected | {window.version}
        )
        if target is None:
            window = close(
                window,
                "blocked",
                f"{reason}; not rolled back: every older kept revision serves a version the "
                "guard rejected (or this one)",
            )
            self.metrics.verdicts.labels("blocked").inc()
            self._save(window)
            return window
        # the verdict is written before the undo: a guard that dies half-way never rolls the
        # same revision back twice (at most once, never at least once)
        window = close(window, "rolled-back", reason)
        self._save(
            window, {REJECTED: encode_rejected(decode_rejected(annotations), window.version)}
        )
        request = RollbackRequest(
            env=self.options.env,
            manifests_root=None,
            actor=self.options.actor,
            reason=reason,
            to_revision=target,
            timeout=self.options.rollout_timeout,
        )
        try:
            result = rollback_deployment(
                self.settings, request, kubectl=self.cluster, client=self.registry
            )
        except SlipwayError as e:
            window = replace(window, verdict="rollback-failed", detail=f"{reason}; {e}"[:500])
            self.metrics.verdicts.labels("rollback-failed").inc()
            self._save(window)
            log.error("guard: rollback of revision %s failed: %s", window.revision, e)
            return window
        self.metrics.rollbacks.labels(decision.kpi or "unknown").inc()
        self.metrics.verdicts.labels("rolled-back").inc()
        extra = {RESTORED: str(result.served.revision)} if result.served.revision else {}
        self._save(window, extra)
        self._tag_rejected(window.version, reason)
        log.warning(
            "guard: rolled %s back to revision %s (%s): %s",
            window.version,
            result.served.revision,
            result.served.version,
            reason,
        )
        return window

    def _registry_rejected(self) -> set[str]:
        try:
            found = self.registry.search_model_versions(
                f"name='{self.settings.model_name}' and tags.{TAG_REJECTED} != ''"
            )
        except Exception:  # the annotations still list them; the registry is a second copy
            self.metrics.errors.labels("registry").inc()
            return set()
        from slipway.registry import TAG_VERSION_CODE

        return {v.tags[TAG_VERSION_CODE] for v in found if v.tags.get(TAG_VERSION_CODE)}

    def _tag_rejected(self, version: str, reason: str) -> None:
        from slipway.release import find_registry_version

        name = self.settings.model_name
        try:
            found = find_registry_version(self.registry, name, version)
            self.registry.set_model_version_tag(
                name, str(found.version), TAG_REJECTED, reason[:500]
            )
        except (RegistryError, Exception):  # the annotations keep the rejection
            self.metrics.errors.labels("registry").inc()

    def _save(self, window: WindowState, extra: dict[str, str] | None = None) -> None:
        if self.options.dry_run:
            self._dry_window = window
            return
        self.cluster.patch_annotations({WINDOW: encode_window(window), **(extra or {})})

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Check every interval, and at once when the Deployment's revision changes, until ``stop``.

        A thread watches the Deployment from its resourceVersion; an expired version (HTTP 410)
        or a dropped connection lists it again (with a backoff of up to 30 s on errors). A failed
        step is logged and counted, never fatal: the next interval tries again.
        """
        wake = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(stop, wake), name="slipway-guard-watch", daemon=True
        )
        watcher.start()
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.check()
            except SlipwayError as e:
                log.error("guard: check failed: %s", e)
            deadline = started + self.policy.interval_s
            # short slices, so that a stop (SIGTERM) is seen within half a second
            while not stop.is_set() and not wake.is_set() and time.monotonic() < deadline:
                wake.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            wake.clear()
        watcher.join(timeout=5)

    def _watch(self, stop: threading.Event, wake: threading.Event) -> None:
        from kubernetes.client.exceptions import ApiException

        resource_version: str | None = None
        seen: tuple[Any, ...] | None = None
        backoff = 1.0
        while not stop.is_set():
            try:
                if resource_version is None:
                    live = self.cluster.get_deployment()
                    resource_version = live["metadata"]["resourceVersion"]
                    seen = _trigger(live)
                for kind, obj in self.cluster.watch(resource_version, timeout_s=30):
                    if stop.is_set():
                        return
                    resource_version = obj["metadata"].get("resourceVersion", resource_version)
                    if kind in ("BOOKMARK", "ERROR"):
                        continue
                    if _trigger(obj) != seen:  # a new revision or pause, not our own patches
                        seen = _trigger(obj)
                        wake.set()
                backoff = 1.0
            except ApiException as e:
                if e.status != 410:
                    log.warning("guard: watch failed (HTTP %s), listing again", e.status)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                resource_version = None  # 410 Gone: too old, list again
            except Exception as e:  # connection dropped, API restarting
                log.warning("guard: watch interrupted (%s), reconnecting", e)
                resource_version = None
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)


def _trigger(deployment: dict[str, Any]) -> tuple[Any, ...]:
    # not metadata.generation: the API server bumps a Deployment's generation on every change
    # of its annotations too, so the guard's own writes would wake it again and again
    annotations = deployment["metadata"].get("annotations") or {}
    return (annotations.get(REVISION_ANNOTATION), annotations.get(PAUSED))


def _counts(window: WindowState) -> str:
    failing = ", ".join(f"{k}={v}" for k, v in sorted(window.failures.items()) if v) or "none"
    return (
        f"revision {window.revision} ({window.version}) check {window.checks}, failing: {failing}"
        + (f", verdict {window.verdict}" if window.verdict else "")
    )
