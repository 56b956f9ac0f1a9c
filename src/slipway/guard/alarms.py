"""The guard's CloudWatch path: KPI alarms delivered through SNS to an SQS queue it reads.

For clusters without an in-cluster Prometheus the KPIs are watched by the CloudWatch alarms that
``slipway alarms apply`` generates from the same catalog (``slipway-<kpi>``). Their alarm and
OK actions notify an SNS topic; an SQS queue subscribed to that topic holds the notifications
until the guard reads them (a topic keeps nothing for a subscriber that is not listening).

:func:`parse_alarm_notification` reads one message: the SNS envelope (``Type: Notification``,
the alarm as a JSON string in ``Message``) or, with raw message delivery, the alarm itself
(``AlarmName``, ``NewStateValue``, ``NewStateReason``, ``StateChangeTime``, ``Trigger`` ...).
:class:`AlarmQueue` long-polls the queue, keeps the newest state of each alarm and deletes
each message once it is read (an unreadable message is deleted too, and counted: it would
come back forever). :meth:`AlarmQueue.firing` answers the guard's question for one bake
window: which rollback KPIs went into ``ALARM`` after the window started, and why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slipway.errors import SlipwayError

__all__ = [
    "AlarmEvent",
    "AlarmQueue",
    "AlarmQueueError",
    "parse_alarm_notification",
    "sqs_client",
]

log = logging.getLogger(__name__)

#: CloudWatch alarm names of KPIs: ``slipway-<kpi>`` (slipway.monitoring.cloudwatch).
ALARM_PREFIX = "slipway-"
STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


class AlarmQueueError(SlipwayError, RuntimeError):
    """The alarm queue could not be read; the message names the queue and the fix."""


@dataclass(frozen=True)
class AlarmEvent:
    """One state change of a KPI alarm, as CloudWatch notified it.

    Attributes:
        alarm: The alarm name (``slipway-http-5xx-ratio``).
        kpi: The KPI it watches (``http-5xx-ratio``).
        state: ``OK``, ``ALARM`` or ``INSUFFICIENT_DATA``.
        reason: CloudWatch's ``NewStateReason`` (threshold, datapoints).
        changed_at: ``StateChangeTime``, seconds since the epoch.
    """

    alarm: str
    kpi: str
    state: str
    reason: str
    changed_at: float


def parse_alarm_notification(body: str) -> AlarmEvent | None:
    """The alarm state change in one SQS message body.

    Args:
        body: The message body: an SNS notification envelope, or the alarm JSON itself (raw
            message delivery).

    Returns:
        The event; ``None`` for a message that is not a slipway KPI alarm (another alarm on the
        same topic, SNS' subscription confirmation).

    Raises:
        ValueError: the body is not JSON, or an alarm notification lacks a field or has an
            unknown state; the message says which.
    """
    try:
        data = json.loads(body)
    except ValueError as e:
        raise ValueError(f"alarm message is not JSON: {body[:80]!r}") from e
    if not isinstance(data, dict):
        raise ValueError(f"alarm message is not a JSON object: {body[:80]!r}")
    if "AlarmName" not in data:
        if data.get("Type") != "Notification":
            return None  # SubscriptionConfirmation, UnsubscribeConfirmation ...
        try:
            data = json.loads(data.get("Message") or "")
        except ValueError:
            return None  # a plain-text notification on the topic: not an alarm
        if not isinstance(data, dict) or "AlarmName" not in data:
            return None
    name = str(data["AlarmName"])
    if not name.startswith(ALARM_PREFIX):
        return None
    state = data.get("NewStateValue")
    if state not in STATES:
        raise ValueError(f"alarm {name}: NewStateValue {state!r} is not one of {STATES}")
    changed = data.get("StateChangeTime")
    if not isinstance(changed, str):
        raise ValueError(f"alarm {name}: no StateChangeTime in the notification")
    return AlarmEvent(
        alarm=name,
        kpi=name.removeprefix(ALARM_PREFIX),
        state=state,
        reason=" ".join(str(data.get("NewStateReason") or "").split())[:300],
        changed_at=_timestamp(changed, name),
    )


def _timestamp(text: str, name: str) -> float:
    # CloudWatch writes 2026-12-01T17:01:00.000+0000; accept ISO 8601 with Z or +00:00 too
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, pattern).timestamp()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as e:
        raise ValueError(f"alarm {name}: StateChangeTime {text!r} is not a timestamp") from e


class AlarmQueue:
    """Reads KPI alarm notifications from an SQS queue and keeps each alarm's newest state.

    Args:
        queue_url: The SQS queue subscribed to the alarms' SNS topic.
        client: A boto3 SQS client (:func:`sqs_client`).
        kpis: The rollback KPIs the guard checks; other alarms are read and dropped.
        wait_s: Long-poll time of the first receive of each :meth:`poll` (0-20 s).
        on_invalid: Called with the error of each unreadable message (the guard counts it).
    """

    def __init__(
        self,
        queue_url: str,
        client: Any,
        kpis: Iterable[str],
        *,
        wait_s: int = 1,
        on_invalid: Callable[[Exception], None] | None = None,
    ) -> None:
        if not queue_url.startswith(("https://", "http://")):
            raise AlarmQueueError(
                f"alarm queue URL {queue_url!r} is not an SQS queue URL: pass --alarm-queue-url "
                "like https://sqs.us-east-1.amazonaws.com/123456789012/slipway-guard-alarms"
            )
        if not 0 <= wait_s <= 20:
            raise AlarmQueueError(f"wait_s {wait_s} must be 0-20 s (SQS long polling)")
        self.queue_url, self.client, self.wait_s = queue_url, client, wait_s
        self.kpis = frozenset(kpis)
        self.on_invalid = on_invalid
        self.latest: dict[str, AlarmEvent] = {}

    def poll(self, max_batches: int = 10) -> list[AlarmEvent]:
        """Receive what the queue holds (up to ``max_batches`` x 10 messages), newest state kept.

        Returns:
            The events read, oldest first.

        Raises:
            AlarmQueueError: the queue could not be read (unreachable, no permission, no queue).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        events: list[AlarmEvent] = []
        for batch in range(max_batches):
            try:
                got = self.client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_s if batch == 0 else 0,
                )
            except (ClientError, BotoCoreError) as e:
                raise AlarmQueueError(
                    f"could not read the alarm queue {self.queue_url}: {e}; check the URL and "
                    "that the guard's role may sqs:ReceiveMessage and sqs:DeleteMessage on it"
                ) from e
            messages = got.get("Messages") or []
            for message in messages:
                event = self._read(message.get("Body") or "")
                if event is not None:
                    events.append(event)
                self._delete(message)
            if len(messages) < 10:
                break
        for event in sorted(events, key=lambda e: e.changed_at):
            known = self.latest.get(event.kpi)
            if known is None or event.changed_at >= known.changed_at:  # SQS does not keep order
                self.latest[event.kpi] = event
        return events

    def firing(self, since: float) -> dict[str, str]:
        """Rollback KPIs whose alarm is in ``ALARM``, entered at or after ``since``.

        An alarm already firing before a bake window started is the previous version's, not the
        new one's: it is not counted against it.

        Returns:
            KPI name -> a reason naming the alarm and CloudWatch's state reason.
        """
        return {
            kpi: f"CloudWatch alarm {event.alarm} is ALARM: {event.reason}"
            for kpi, event in sorted(self.latest.items())
            if event.state == "ALARM" and event.changed_at >= since
        }

    def _read(self, body: str) -> AlarmEvent | None:
        try:
            event = parse_alarm_notification(body)
        except ValueError as e:
            log.warning("guard: dropped an unreadable alarm message: %s", e)
            if self.on_invalid is not None:
                self.on_invalid(e)
            return None
        if event is not None and event.kpi not in self.kpis:
            log.info("guard: alarm %s is not a rollback KPI: ignored", event.alarm)
            return None
        return event

    def _delete(self, message: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_message(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        except (ClientError, BotoCoreError) as e:  # it comes back after its visibility timeout
            log.warning("guard: could not delete an alarm message (%s); it will be read again", e)


def sqs_client(region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 SQS client; ``endpoint_url`` points it at moto in tests."""
    import boto3

    return boto3.client("sqs", region_name=region, endpoint_url=endpoint_url)
