"""The guard's CloudWatch path without AWS: notifications parsed, the queue drained, and an
ALARM counted as a failing check by the decision core and the reconcile step.

The same path against a real SNS topic and SQS queue on moto, with a real Deployment, is in
tests/integration/test_guard_on_k8s.py (test_guard_rolls_back_on_a_cloudwatch_alarm_from_sns).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from slipway.guard.alarms import AlarmQueue, AlarmQueueError, parse_alarm_notification
from slipway.guard.policy import GuardPolicy, KpiCheck
from slipway.guard.state import decode_window
from slipway.guard.window import Observation, evaluate, start_window
from tests.support.cloudwatch_alarms import alarm_message, sns_envelope
from tests.unit.guard.test_runner import V2, make

TOPIC = "arn:aws:sns:us-east-1:123456789012:slipway-alerts"
T0 = 1_800_000_000.0
ALARM = {
    "AlarmName": "slipway-http-5xx-ratio",
    "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:slipway-http-5xx-ratio",
    "AlarmDescription": "inference requests are failing with 5xx.",
    "EvaluationPeriods": 5,
    "DatapointsToAlarm": 5,
    "ComparisonOperator": "GreaterThanThreshold",
    "Threshold": 0.05,
    "TreatMissingData": "breaching",
    "Metrics": [{"Id": "kpi", "Expression": "FILL(errors, 0) / requests", "ReturnData": True}],
}
REASON = (
    "Threshold Crossed: 5 out of the last 5 datapoints [0.31 (01/12/26 17:04:00)] were "
    "greater than the threshold (0.05) (minimum 5 datapoints for OK -> ALARM transition)."
)


def body(state: str = "ALARM", at: float = T0 + 30, name: str | None = None, raw: bool = False):
    alarm = dict(ALARM, AlarmName=name or ALARM["AlarmName"])
    message = alarm_message(alarm, state, REASON if state == "ALARM" else "back to OK", at=at)
    return message if raw else sns_envelope(message, TOPIC)


def test_an_sns_wrapped_alarm_notification_is_read() -> None:
    event = parse_alarm_notification(body())
    assert (event.alarm, event.kpi, event.state) == (
        "slipway-http-5xx-ratio",
        "http-5xx-ratio",
        "ALARM",
    )
    assert event.reason == REASON
    assert event.changed_at == pytest.approx(T0 + 30, abs=0.001)
    raw = parse_alarm_notification(body(raw=True))  # raw message delivery: the alarm itself
    assert raw == event


def test_messages_that_are_not_slipway_alarms_are_skipped_and_broken_ones_named() -> None:
    confirm = json.dumps({"Type": "SubscriptionConfirmation", "Message": "You have chosen..."})
    assert parse_alarm_notification(confirm) is None
    assert parse_alarm_notification(sns_envelope("plain text", TOPIC)) is None
    assert parse_alarm_notification(body(name="billing-over-budget")) is None
    with pytest.raises(ValueError, match="not JSON"):
        parse_alarm_notification("{oops")
    broken = json.loads(body(raw=True))
    broken["NewStateValue"] = "FIRING"
    with pytest.raises(ValueError, match="NewStateValue 'FIRING'"):
        parse_alarm_notification(json.dumps(broken))
    del broken["StateChangeTime"]
    broken["NewStateValue"] = "OK"
    with pytest.raises(ValueError, match="no StateChangeTime"):
        parse_alarm_notification(json.dumps(broken))


class FakeSqs:
    def __init__(self, bodies: list[str]) -> None:
        self.bodies = list(bodies)
        self.deleted: list[str] = []
        self.waits: list[int] = []

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, WaitTimeSeconds: int):
        self.waits.append(WaitTimeSeconds)
        batch, self.bodies = self.bodies[:MaxNumberOfMessages], self.bodies[MaxNumberOfMessages:]
        return {"Messages": [{"Body": b, "ReceiptHandle": f"h{i}"} for i, b in enumerate(batch)]}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.deleted.append(ReceiptHandle)


def test_the_queue_keeps_each_kpis_newest_state_and_deletes_every_message() -> None:
    bodies = [body("ALARM", T0 + 30), body("OK", T0 + 10), "{broken"]  # SQS does not keep order
    bodies += [body(name="slipway-p95-latency")] * 9  # a KPI the guard does not check
    sqs, invalid = FakeSqs(bodies), []
    queue = AlarmQueue("http://sqs/q", sqs, ["http-5xx-ratio"], on_invalid=invalid.append)
    events = queue.poll()
    assert [e.state for e in events] == ["ALARM", "OK"]
    assert len(sqs.deleted) == 12
    assert sqs.waits == [1, 0]  # two batches, one long poll
    assert len(invalid) == 1
    firing = queue.firing(since=T0)
    assert list(firing) == ["http-5xx-ratio"]
    assert (
        "CloudWatch alarm slipway-http-5xx-ratio is ALARM: Threshold Crossed"
        in firing["http-5xx-ratio"]
    )
    # an alarm that fired before the window started is the previous version's
    assert queue.firing(since=T0 + 31) == {}
    queue.latest["http-5xx-ratio"] = parse_alarm_notification(body("OK", T0 + 40))
    assert queue.firing(since=T0) == {}


def test_the_queue_refuses_a_url_that_is_not_one() -> None:
    with pytest.raises(AlarmQueueError, match="--alarm-queue-url"):
        AlarmQueue("slipway-guard-alarms", FakeSqs([]), ["http-5xx-ratio"])


ERRORS = KpiCheck("http-5xx-ratio", "x by (version)", 0.05, "GreaterThanThreshold", 2)
POLICY = GuardPolicy((ERRORS,), "t by (version)", 100, 10, 30)


def test_an_alarm_is_a_failing_check_and_its_reason_goes_into_the_decision() -> None:
    state = start_window(4, "v4-x", T0)
    firing = {"http-5xx-ratio": f"CloudWatch alarm slipway-http-5xx-ratio is ALARM: {REASON}"}
    # Prometheus says healthy (or has nothing, as without Prometheus): the alarm decides
    state, first = evaluate(
        state, POLICY, Observation(T0 + 10, 5.0, {"http-5xx-ratio": 0.0}, firing)
    )
    state, second = evaluate(state, POLICY, Observation(T0 + 20, None, {}, firing))
    assert (first.action, second.action) == ("wait", "rollback")
    assert second.kpi == "http-5xx-ratio"
    assert second.reason.startswith(
        "slipway guard: KPI http-5xx-ratio (CloudWatch alarm slipway-http-5xx-ratio is ALARM: "
        "Threshold Crossed: 5 out of the last 5 datapoints [0.31"
    )
    assert "in 2 consecutive checks (10 s apart) of v4-x, revision 4" in second.reason
    # without Prometheus and without an alarm nothing is counted, and nothing rolls back
    state = start_window(5, "v5-x", T0)
    state, decision = evaluate(state, POLICY, Observation(T0 + 50, None, {}))
    assert (decision.action, state.failures) == ("wait", {})


class FakeQueue:
    on_invalid = None

    def __init__(self) -> None:
        self.firing_kpis: dict[str, str] = {}
        self.down = False
        self.since: list[float] = []

    def poll(self) -> list[Any]:
        if self.down:
            raise AlarmQueueError("could not read the alarm queue http://sqs/q")
        return []

    def firing(self, since: float) -> dict[str, str]:
        self.since.append(since)
        return dict(self.firing_kpis)


def test_the_reconcile_step_rolls_back_on_alarms_alone_without_prometheus(tmp_path) -> None:
    guard, cluster, _, clock, _ = make(tmp_path)
    cluster.history = [(2, V2)]  # nothing to return to: the decision ends 'blocked'
    queue = FakeQueue()
    guard.prometheus, guard.alarms = None, queue
    assert guard.check().action == "started, wait"
    assert queue.since == [clock.now]  # alarms count from the window's start
    queue.firing_kpis = {"http-5xx-ratio": "CloudWatch alarm slipway-http-5xx-ratio is ALARM: x"}
    clock.now += 5
    guard.check()
    clock.now += 5
    report = guard.check()
    assert report.action == "rollback"
    window = decode_window(cluster.annotations)
    assert (window.version, window.verdict) == (V2, "blocked")
    assert window.failures == {"http-5xx-ratio": 2}
    assert "CloudWatch alarm slipway-http-5xx-ratio is ALARM" in window.detail
    # the queue down and no Prometheus: an error, nothing counted
    guard2, cluster2, _, _, metrics2 = make(tmp_path)
    guard2.prometheus, guard2.alarms = None, FakeQueue()
    guard2.alarms.down = True
    assert guard2.check().action == "error"
    assert (
        metrics2.registry.get_sample_value("slipway_guard_errors_total", {"source": "alarms"}) == 1
    )
    assert decode_window(cluster2.annotations).checks == 0


def test_a_broken_queue_beside_prometheus_is_counted_and_prometheus_still_decides(tmp_path) -> None:
    guard, _, prom, _, metrics = make(tmp_path)
    guard.alarms = FakeQueue()
    guard.alarms.down = True
    prom.values = {"traffic": 3.0, "errors": 0.5}
    assert guard.check().action == "started, wait"
    assert (
        metrics.registry.get_sample_value("slipway_guard_errors_total", {"source": "alarms"}) == 1
    )


def test_a_guard_needs_prometheus_or_an_alarm_queue(tmp_path) -> None:
    from slipway.errors import ConfigError
    from slipway.guard.runner import Guard

    guard, cluster, *_ = make(tmp_path)
    with pytest.raises(ConfigError, match=r"--prometheus-url.*--alarm-queue-url"):
        Guard(guard.settings, guard.policy, cluster, None)
