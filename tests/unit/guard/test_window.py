"""The guard's decision core: windows, consecutive failures, grace, traffic, targets."""

from __future__ import annotations

import math

import pytest

from slipway.errors import ConfigError
from slipway.guard.policy import GuardPolicy, KpiCheck, policy_from_catalog
from slipway.guard.window import (
    Observation,
    choose_target,
    close,
    evaluate,
    start_window,
)
from slipway.monitoring.kpis import load_kpi_catalog, parse_kpi_catalog
from tests.support import REPO

ERRORS = KpiCheck("http-5xx-ratio", "x by (version)", 0.05, "GreaterThanThreshold", 3)
CONFIDENCE = KpiCheck("mean-confidence-drop", "y by (version)", 0.75, "LessThanThreshold", 2)
POLICY = GuardPolicy(
    checks=(ERRORS, CONFIDENCE),
    traffic_expr="t by (version)",
    bake_window_s=100,
    interval_s=10,
    grace_period_s=30,
)
T0 = 1_000_000.0


def obs(at: float, traffic: float | None = 5.0, **values: float | None) -> Observation:
    names = {"errors": "http-5xx-ratio", "confidence": "mean-confidence-drop"}
    return Observation(T0 + at, traffic, {names[k]: v for k, v in values.items()})


def run(state, *observations):
    decisions = []
    for o in observations:
        state, decision = evaluate(state, POLICY, o)
        decisions.append(decision)
    return state, decisions


def test_three_consecutive_failures_roll_back_and_name_kpi_value_and_threshold() -> None:
    state = start_window(7, "v2-x", T0)
    state, decisions = run(
        state,
        obs(10, errors=0.2, confidence=0.9),
        obs(20, errors=0.3, confidence=0.9),
        obs(30, errors=0.5, confidence=0.9),
    )
    assert [d.action for d in decisions] == ["wait", "wait", "rollback"]
    last = decisions[-1]
    assert (last.kpi, last.value, last.threshold) == ("http-5xx-ratio", 0.5, 0.05)
    assert "KPI http-5xx-ratio = 0.5 > threshold 0.05" in last.reason
    assert "3 consecutive checks" in last.reason
    assert "revision 7" in last.reason
    assert state.failures["http-5xx-ratio"] == 3
    assert state.open  # the caller closes it with the outcome


def test_a_passing_check_resets_the_count() -> None:
    state, decisions = run(
        start_window(2, "v2-x", T0),
        obs(10, errors=0.2, confidence=0.9),
        obs(20, errors=0.2, confidence=0.9),
        obs(30, errors=0.01, confidence=0.9),
        obs(40, errors=0.2, confidence=0.9),
        obs(50, errors=0.2, confidence=0.9),
    )
    assert [d.action for d in decisions] == ["wait"] * 5
    assert state.failures["http-5xx-ratio"] == 2


def test_less_than_comparison_uses_its_own_consecutive_count() -> None:
    _, decisions = run(
        start_window(2, "v2-x", T0),
        obs(10, errors=0.0, confidence=0.6),
        obs(20, errors=0.0, confidence=0.7),
    )
    assert [d.action for d in decisions] == ["wait", "rollback"]
    assert decisions[-1].kpi == "mean-confidence-drop"
    assert "< threshold 0.75" in decisions[-1].reason


def test_missing_data_is_not_counted_during_the_grace_period() -> None:
    state, decisions = run(
        start_window(2, "v2-x", T0),
        obs(0, errors=None, confidence=None),
        obs(10, errors=math.nan, confidence=None),
        obs(20, errors=None, confidence=None),
    )
    assert [d.action for d in decisions] == ["wait"] * 3
    assert state.failures == {}
    assert state.checks == 3


def test_missing_data_with_traffic_after_the_grace_period_is_failing() -> None:
    _, decisions = run(
        start_window(2, "v2-x", T0),
        obs(30, errors=None, confidence=0.9),
        obs(40, errors=None, confidence=0.9),
        obs(50, errors=None, confidence=0.9),
    )
    assert [d.action for d in decisions] == ["wait", "wait", "rollback"]
    assert decisions[-1].value is None
    assert "had no data for v2-x while it received traffic" in decisions[-1].reason


def test_a_version_without_traffic_is_reported_not_rolled_back() -> None:
    observations = [obs(t, traffic=None if t % 20 else 0.0) for t in range(0, 101, 10)]
    state, decisions = run(start_window(4, "v4-x", T0), *observations)
    assert [d.action for d in decisions[:-1]] == ["wait"] * 10
    assert decisions[-1].action == "no-traffic"
    assert (state.verdict, state.traffic_seen) == ("no-traffic", False)
    assert "received no traffic" in state.detail


def test_a_window_that_passes_ends_passed_and_never_decides_again() -> None:
    state, decisions = run(
        start_window(3, "v3-x", T0),
        obs(50, errors=0.0, confidence=0.95),
        obs(100, errors=0.0, confidence=0.95),
    )
    assert [d.action for d in decisions] == ["wait", "pass"]
    assert state.verdict == "passed"
    state2, decision = evaluate(state, POLICY, obs(110, errors=1.0, confidence=0.1))
    assert decision.action == "none"
    assert state2 == state


def test_a_closed_window_gives_at_most_one_rollback() -> None:
    state, decisions = run(
        start_window(5, "v5-x", T0),
        obs(10, errors=0.0, confidence=0.1),
        obs(20, errors=0.0, confidence=0.1),
    )
    assert decisions[-1].action == "rollback"
    state = close(state, "rolled-back", decisions[-1].reason)
    again = close(state, "passed", "later")
    assert again.verdict == "rolled-back"
    _, decision = evaluate(state, POLICY, obs(30, errors=0.0, confidence=0.1))
    assert decision.action == "none"
    with pytest.raises(ValueError, match="verdict 'maybe' is not one of"):
        close(start_window(1, "v", T0), "maybe", "x")


def test_a_window_the_guards_rollback_created_only_reports() -> None:
    state, decisions = run(
        start_window(6, "v1-x", T0, restored=True),
        obs(10, errors=0.0, confidence=0.1),
        obs(20, errors=0.0, confidence=0.1),
    )
    assert state.mode == "watch"
    assert decisions[-1].action == "report"


def test_choose_target_skips_rejected_versions_and_the_current_one() -> None:
    history = [(1, "a"), (2, "b"), (3, "c"), (4, "b"), (5, "d")]
    assert choose_target(5, history, rejected=[]) == 4
    assert choose_target(5, history, rejected=["b"]) == 3
    assert choose_target(5, history, rejected=["b", "c", "a"]) is None
    assert choose_target(4, history, rejected=[]) == 3  # revision 2 also serves b: skipped too
    assert choose_target(1, history, rejected=[]) is None


def test_policy_checks_its_times() -> None:
    with pytest.raises(ConfigError, match="interval 200 s must be > 0 and shorter"):
        POLICY.with_times(interval_s=200)
    with pytest.raises(ConfigError, match="grace period 150 s"):
        POLICY.with_times(grace_period_s=150)
    with pytest.raises(ConfigError, match="has no KPI to check"):
        GuardPolicy((), "t", 100, 10, 30)
    assert POLICY.with_times(bake_window_s=20, interval_s=1, grace_period_s=5).bake_window_s == 20


def test_policy_from_the_project_catalog_covers_every_rollback_kpi() -> None:
    catalog = load_kpi_catalog(REPO / "monitoring" / "kpis.yaml")
    policy = policy_from_catalog(catalog)
    assert {c.name for c in policy.checks} == {k.name for k in catalog.kpis if k.rollback}
    assert policy.interval_s < policy.grace_period_s < policy.bake_window_s
    assert all("version" in c.expr for c in policy.checks)
    assert "version" in policy.traffic_expr


def _catalog(**changes):
    data = __import__("yaml").safe_load((REPO / "monitoring" / "kpis.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def test_catalog_rejects_guard_blocks_in_the_wrong_places() -> None:
    data = _catalog()
    rollback = next(k for k in data["kpis"] if k["rollback"])
    plain = next(k for k in data["kpis"] if not k["rollback"])
    plain["guard"] = dict(rollback["guard"])
    with pytest.raises(Exception, match="a guard block needs rollback: true"):
        parse_kpi_catalog(data)

    data = _catalog(guard=None)
    with pytest.raises(Exception, match="no top-level guard block"):
        parse_kpi_catalog(data)

    data = _catalog()
    next(k for k in data["kpis"] if k["rollback"])["guard"]["expr"] = "sum(rate(x[1m]))"
    with pytest.raises(Exception, match="one series per served version"):
        parse_kpi_catalog(data)

    data = _catalog()
    data["guard"]["interval"] = "20m"
    with pytest.raises(Exception, match="must be shorter than bake_window"):
        parse_kpi_catalog(data)

    data = _catalog()
    next(k for k in data["kpis"] if k["rollback"]).pop("guard")
    catalog = parse_kpi_catalog(data)
    with pytest.raises(ConfigError, match="rollback KPIs without a guard block: http-5xx-ratio"):
        policy_from_catalog(catalog)
