"""CloudWatch alarm state-change notifications, in the exact shape CloudWatch publishes to SNS.

moto (5.x) changes an alarm's state on ``set_alarm_state`` but runs none of its actions, so the
tests publish what CloudWatch would: the alarm notification JSON (the SNS ``Message``), built
here from the alarm as ``describe_alarms`` returns it, field for field as documented in
"Amazon CloudWatch alarm notification" (AlarmName, AlarmDescription, AWSAccountId,
NewStateValue, NewStateReason, StateChangeTime, Region, AlarmArn, OldStateValue, Trigger ...).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def alarm_message(
    alarm: dict[str, Any],
    new_state: str,
    reason: str,
    old_state: str = "OK",
    at: float | None = None,
) -> str:
    """The ``Message`` CloudWatch publishes when ``alarm`` (a described MetricAlarm) changes state."""
    when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
    trigger: dict[str, Any] = {
        "Period": alarm.get("Period"),
        "EvaluationPeriods": alarm["EvaluationPeriods"],
        "DatapointsToAlarm": alarm.get("DatapointsToAlarm"),
        "ComparisonOperator": alarm["ComparisonOperator"],
        "Threshold": alarm["Threshold"],
        "TreatMissingData": alarm.get("TreatMissingData", ""),
        "EvaluateLowSampleCountPercentile": "",
    }
    if alarm.get("Metrics"):
        trigger["Metrics"] = alarm["Metrics"]
    else:
        trigger.update(
            {
                "MetricName": alarm["MetricName"],
                "Namespace": alarm["Namespace"],
                "StatisticType": "ExtendedStatistic"
                if alarm.get("ExtendedStatistic")
                else "Statistic",
                "Statistic": (alarm.get("Statistic") or "").upper() or None,
                "ExtendedStatistic": alarm.get("ExtendedStatistic"),
                "Unit": None,
                "Dimensions": [
                    {"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])
                ],
            }
        )
    arn = alarm["AlarmArn"]
    return json.dumps(
        {
            "AlarmName": alarm["AlarmName"],
            "AlarmDescription": alarm.get("AlarmDescription"),
            "AWSAccountId": arn.split(":")[4],
            "AlarmConfigurationUpdatedTimestamp": when.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "NewStateValue": new_state,
            "NewStateReason": reason,
            "StateChangeTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
            "Region": "US East (N. Virginia)",
            "AlarmArn": arn,
            "OldStateValue": old_state,
            "OKActions": alarm.get("OKActions", []),
            "AlarmActions": alarm.get("AlarmActions", []),
            "InsufficientDataActions": alarm.get("InsufficientDataActions", []),
            "Trigger": trigger,
        }
    )


def sns_envelope(message: str, topic_arn: str, subject: str = "ALARM") -> str:
    """An SQS body as SNS delivers ``message`` to a queue without raw message delivery."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "7b1c2d3e-0000-4000-8000-000000000001",
            "TopicArn": topic_arn,
            "Subject": subject,
            "Message": message,
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "SignatureVersion": "1",
        }
    )
