"""The decision core of ``slipway guard``: one bake window per pod-template revision.

Pure functions over plain values, no clock and no I/O, so that every rule is a unit test:

* a new revision starts a window (:func:`start_window`); a revision that the guard's own
  rollback created is watched but never rolled back (no flapping between two versions);
* each check (:func:`evaluate`) counts, per KPI, the failing checks in a row for the new
  version; ``consecutive`` of them decide a rollback, naming the KPI, its value and threshold;
* missing data is not counted during the grace period; after it, missing data while the version
  receives traffic is a failing check, and a version that never receives traffic is reported
  (verdict ``no-traffic``), not rolled back;
* a KPI whose CloudWatch alarm went into ``ALARM`` during the window (the guard's SQS queue,
  :mod:`slipway.guard.alarms`) fails the check whatever Prometheus says, and the decision's
  reason quotes the alarm's;
* a window whose bake time passes without a rollback ends ``passed`` (the registry version is
  then tagged ``verified``);
* a window has at most one verdict, so at most one rollback per revision;
* :func:`choose_target` never returns a revision serving a version the guard rejected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from slipway.guard.policy import GuardPolicy, KpiCheck

__all__ = [
    "VERDICTS",
    "Decision",
    "Observation",
    "WindowState",
    "choose_target",
    "close",
    "evaluate",
    "start_window",
]

Mode = Literal["guard", "watch"]
#: How a window ends. ``rolled-back``: the guard rolled it back; ``blocked``: a KPI failed but
#: there was no revision to return to (all earlier versions rejected); ``rollback-failed``: the
#: rollback stopped part-way (the error says how to finish); ``would-roll-back``: dry run;
#: ``reported``: a KPI failed in a ``watch`` window (one the guard's own rollback created).
VERDICTS = (
    "passed",
    "no-traffic",
    "rolled-back",
    "blocked",
    "rollback-failed",
    "would-roll-back",
    "reported",
)


@dataclass(frozen=True)
class WindowState:
    """The bake window of one pod-template revision (kept in the Deployment's annotations).

    Attributes:
        revision: The Deployment revision (``deployment.kubernetes.io/revision``).
        version: The model version its pod template pins (``MODEL_VERSION``).
        started_at: When the window started, seconds since the epoch.
        mode: ``guard`` (may roll back) or ``watch`` (a revision the guard's own rollback
            created: failures are reported, never rolled back).
        failures: Failing checks in a row, per KPI name.
        checks: Checks made so far.
        traffic_seen: The version received traffic at some check.
        verdict: How the window ended (one of :data:`VERDICTS`); ``None`` while open.
        detail: The reason of the verdict, one line.
    """

    revision: int
    version: str
    started_at: float
    mode: Mode = "guard"
    failures: Mapping[str, int] = field(default_factory=dict)
    checks: int = 0
    traffic_seen: bool = False
    verdict: str | None = None
    detail: str = ""

    @property
    def open(self) -> bool:
        """True while the window has no verdict."""
        return self.verdict is None


@dataclass(frozen=True)
class Observation:
    """One check's query results for the window's version.

    Attributes:
        at: When the queries ran, seconds since the epoch.
        traffic: Inference requests per second of the version; ``None`` when there is no series.
        values: KPI name -> value for the version; ``None`` (or NaN) when there is no series.
        alarms: KPI name -> why its CloudWatch alarm is in ``ALARM`` (entered during the
            window); such a KPI fails the check.
    """

    at: float
    traffic: float | None
    values: Mapping[str, float | None]
    alarms: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What a check decided.

    Attributes:
        action: ``wait`` (window open), ``rollback``, ``report`` (a KPI failed in a ``watch``
            window), ``pass``, ``no-traffic`` or ``none`` (the window was already closed).
        reason: One line for logs and the audit record.
        kpi: The KPI that decided a rollback or report.
        value: Its value (``None``: no data while the version received traffic).
        threshold: Its threshold.
    """

    action: Literal["wait", "rollback", "report", "pass", "no-traffic", "none"]
    reason: str = ""
    kpi: str | None = None
    value: float | None = None
    threshold: float | None = None


def start_window(revision: int, version: str, now: float, *, restored: bool = False) -> WindowState:
    """A new open window for ``revision`` serving ``version``.

    Args:
        revision: The new pod-template revision.
        version: The version its template pins.
        now: Seconds since the epoch.
        restored: The revision was created by the guard's own rollback: watch it only.
    """
    return WindowState(revision, version, now, mode="watch" if restored else "guard")


def _known(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _failed(check: KpiCheck, value: float | None, elapsed: float, traffic: bool, grace: float):
    """True (failing), False (passing) or None (not counted) for one KPI at one check."""
    if value is not None:
        return check.failing(value)
    if elapsed < grace or not traffic:
        return None  # too early to expect data, or nothing to measure: not counted
    return True  # the version serves requests and the KPI cannot be computed: breaching


def evaluate(
    state: WindowState, policy: GuardPolicy, obs: Observation
) -> tuple[WindowState, Decision]:
    """One check of an open window.

    Args:
        state: The window before the check.
        policy: The checks and times.
        obs: The query results for ``state.version``.

    Returns:
        The window after the check, and what to do. A ``rollback`` or ``report`` decision leaves
        the window open: the caller closes it with the outcome (:func:`close`).
    """
    if not state.open:
        return state, Decision("none", f"window of revision {state.revision} is {state.verdict}")
    elapsed = obs.at - state.started_at
    traffic = (_known(obs.traffic) or 0.0) > 0
    failures = dict(state.failures)
    values = {name: _known(value) for name, value in obs.values.items()}
    for check in policy.checks:
        failed = check.name in obs.alarms or _failed(
            check, values.get(check.name), elapsed, traffic, policy.grace_period_s
        )
        if failed is not None:
            failures[check.name] = failures.get(check.name, 0) + 1 if failed else 0
    state = replace(
        state,
        failures=failures,
        checks=state.checks + 1,
        traffic_seen=state.traffic_seen or traffic,
    )
    for check in policy.checks:
        count = failures.get(check.name, 0)
        if count >= check.consecutive:
            value = values.get(check.name)
            reason = _reason(state, check, value, count, policy, obs.alarms.get(check.name))
            action = "rollback" if state.mode == "guard" else "report"
            return state, Decision(action, reason, check.name, value, check.threshold)
    if elapsed >= policy.bake_window_s:
        if state.traffic_seen:
            reason = (
                f"{state.version} (revision {state.revision}) passed its bake window of "
                f"{policy.bake_window_s:g} s ({state.checks} checks)"
            )
            return close(state, "passed", reason), Decision("pass", reason)
        reason = (
            f"{state.version} (revision {state.revision}) received no traffic during its bake "
            f"window of {policy.bake_window_s:g} s: not verified, not rolled back"
        )
        return close(state, "no-traffic", reason), Decision("no-traffic", reason)
    return state, Decision("wait")


def close(state: WindowState, verdict: str, detail: str) -> WindowState:
    """The window with its verdict; a closed window never changes again."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
    if not state.open:
        return state
    return replace(state, verdict=verdict, detail=" ".join(detail.split())[:500])


def _reason(
    state: WindowState,
    check: KpiCheck,
    value: float | None,
    count: int,
    policy: GuardPolicy,
    alarm: str | None = None,
) -> str:
    if alarm is not None:
        measured = f"KPI {check.name} ({alarm})"
    elif value is None:
        measured = f"KPI {check.name} had no data for {state.version} while it received traffic"
    else:
        measured = f"KPI {check.name} = {value:.4g} {check.operator} threshold {check.threshold:g}"
    return (
        f"slipway guard: {measured} in {count} consecutive checks "
        f"({policy.interval_s:g} s apart) of {state.version}, revision {state.revision}"
    )


def choose_target(
    revision: int, history: Iterable[tuple[int, str]], rejected: Iterable[str]
) -> int | None:
    """The revision to roll back to: the newest older one whose version the guard did not reject.

    Args:
        revision: The revision being rolled back.
        history: ``(revision, version)`` of every revision still kept (the ReplicaSets).
        rejected: Versions the guard has rolled back before, and the one being rolled back.

    Returns:
        The revision, or ``None`` when every older revision serves a rejected version.
    """
    versions = dict(history)
    banned = set(rejected) | {versions.get(revision, "")}
    older = sorted((r for r in versions if r < revision), reverse=True)
    return next((r for r in older if versions[r] not in banned), None)
