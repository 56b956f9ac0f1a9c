"""CloudWatch alarms generated from the KPI catalog, applied idempotently.

:func:`alarm_specs` turns each KPI into the keyword arguments of ``put_metric_alarm`` (alarm
``slipway-<kpi>``, explicit ``TreatMissingData``, ``DatapointsToAlarm`` <= ``EvaluationPeriods``,
the SNS topics given as alarm and OK actions, tags). :func:`diff_alarms` compares them with the
alarms that exist (every alarm whose name starts with ``slipway-``), field by field;
:func:`apply_alarms` makes the account match and returns what it changed, so a second run
returns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from slipway.errors import CloudWatchApplyError
from slipway.monitoring.kpis import Kpi, KpiCatalog

ALARM_PREFIX = "slipway-"
MANAGED_TAG = "slipway:managed-by"

#: put_metric_alarm fields compared by diff_alarms (besides the slipway tags).
COMPARED_FIELDS = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Period",
    "Statistic",
    "ExtendedStatistic",
    "Metrics",
    "Threshold",
    "ComparisonOperator",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "TreatMissingData",
)


@dataclass(frozen=True)
class AlarmChange:
    """One difference between the catalog and the account."""

    action: Literal["create", "update", "delete"]
    alarm_name: str
    fields: tuple[str, ...] = ()
    details: dict[str, tuple[Any, Any]] = field(default_factory=dict, compare=False, repr=False)

    def __str__(self) -> str:
        if self.action == "update":
            return f"update {self.alarm_name}: {', '.join(self.fields)}"
        return f"{self.action} {self.alarm_name}"


def cloudwatch_client(region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 CloudWatch client; ``endpoint_url`` points it at moto in tests."""
    import boto3

    return boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url)


def alarm_tags(kpi: Kpi) -> list[dict[str, str]]:
    """The tags of a KPI's alarm: managed-by marker, KPI name, severity, category, rollback."""
    return [
        {"Key": MANAGED_TAG, "Value": "slipway"},
        {"Key": "slipway:kpi", "Value": kpi.name},
        {"Key": "slipway:severity", "Value": kpi.severity},
        {"Key": "slipway:category", "Value": kpi.category},
        {"Key": "slipway:rollback", "Value": "true" if kpi.rollback else "false"},
    ]


def alarm_spec(kpi: Kpi, catalog: KpiCatalog, actions: Sequence[str]) -> dict[str, Any]:
    """The ``put_metric_alarm`` keyword arguments for one KPI.

    Args:
        kpi: the KPI.
        catalog: its catalog (runbook base URL).
        actions: SNS topic ARNs notified when the alarm fires and when it recovers.

    Returns:
        A dict to pass as ``client.put_metric_alarm(**spec)``.
    """
    cw = kpi.cloudwatch
    description = f"{kpi.summary}. {kpi.description.strip()} Runbook: {catalog.runbook_url(kpi)}"
    spec: dict[str, Any] = {
        "AlarmName": kpi.alarm_name,
        "AlarmDescription": description[:1024],
        "ActionsEnabled": True,
        "AlarmActions": list(actions),
        "OKActions": list(actions),
        "InsufficientDataActions": [],
    }
    if cw.expression is None:
        spec["Namespace"] = cw.namespace
        spec["MetricName"] = cw.metric_name
        spec["Dimensions"] = _dimensions(cw.dimensions)
        spec["Period"] = cw.period
        if cw.statistic is not None:
            spec["Statistic"] = cw.statistic
        else:
            spec["ExtendedStatistic"] = cw.extended_statistic
    else:
        queries: list[dict[str, Any]] = [
            {"Id": "kpi", "Expression": cw.expression, "Label": kpi.name, "ReturnData": True}
        ]
        for query_id, query in cw.metrics.items():
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": cw.namespace,
                            "MetricName": query.metric_name,
                            "Dimensions": _dimensions(query.dimensions),
                        },
                        "Period": cw.period,
                        "Stat": query.stat,
                    },
                    "ReturnData": False,
                }
            )
        spec["Metrics"] = queries
    spec.update(
        {
            "Threshold": float(kpi.threshold),
            "ComparisonOperator": kpi.comparison,
            "EvaluationPeriods": kpi.evaluation_periods,
            "DatapointsToAlarm": kpi.datapoints_to_alarm,
            "TreatMissingData": kpi.treat_missing_data,
            "Tags": alarm_tags(kpi),
        }
    )
    return spec


def alarm_specs(catalog: KpiCatalog, actions: Sequence[str]) -> list[dict[str, Any]]:
    """The ``put_metric_alarm`` arguments of every KPI, in catalog order."""
    return [alarm_spec(kpi, catalog, actions) for kpi in catalog.kpis]


def guard_alarm_filter_policy(catalog: KpiCatalog) -> dict[str, list[str]]:
    """The SNS filter policy of the guard's alarm queue: only rollback KPIs' alarms pass.

    Used with ``FilterPolicyScope: MessageBody`` on the queue's subscription. Every KPI alarm notifies the same topic (the pager reads all of them); ``slipway guard
    --alarm-queue-url`` acts on the rollback KPIs only, and ignores any other alarm itself too.
    """
    return {"AlarmName": [kpi.alarm_name for kpi in catalog.kpis if kpi.rollback]}


def diff_alarms(client: Any, catalog: KpiCatalog, actions: Sequence[str]) -> list[AlarmChange]:
    """What :func:`apply_alarms` would change, without changing anything.

    Returns:
        ``create`` for KPIs without an alarm, ``update`` (with the differing fields) for alarms
        whose compared fields or slipway tags differ, ``delete`` for ``slipway-`` alarms that
        are not in the catalog.

    Raises:
        CloudWatchApplyError: the existing alarms could not be read.
    """
    return [change for change, _ in _read_plan(client, catalog, actions)]


def apply_alarms(
    client: Any, catalog: KpiCatalog, actions: Sequence[str], *, prune: bool = True
) -> list[AlarmChange]:
    """Create, update and (with ``prune``) delete alarms so that the account matches the catalog.

    Idempotent: when nothing differs, it makes no write call and returns an empty list.

    Args:
        client: a boto3 CloudWatch client.
        catalog: the KPI catalog.
        actions: SNS topic ARNs for AlarmActions and OKActions.
        prune: delete ``slipway-`` alarms that are no longer in the catalog.

    Returns:
        The changes made.

    Raises:
        CloudWatchApplyError: a call failed; changes before it were applied.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    done: list[AlarmChange] = []
    for change, spec in _read_plan(client, catalog, actions):
        try:
            if change.action == "delete":
                if not prune:
                    continue
                client.delete_alarms(AlarmNames=[change.alarm_name])
            else:
                client.put_metric_alarm(**spec)
                if change.action == "update" and "Tags" in change.fields:
                    _sync_tags(client, change.alarm_name, spec["Tags"])
        except (ClientError, BotoCoreError) as e:
            raise CloudWatchApplyError(
                f"could not {change.action} alarm {change.alarm_name}: {e}; applied before it: "
                f"{[str(c) for c in done] or 'nothing'}"
            ) from e
        done.append(change)
    return done


def _read_plan(
    client: Any, catalog: KpiCatalog, actions: Sequence[str]
) -> list[tuple[AlarmChange, dict[str, Any]]]:
    """:func:`_plan`, with a failed read turned into :class:`CloudWatchApplyError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _plan(client, catalog, actions)
    except (ClientError, BotoCoreError) as e:
        raise CloudWatchApplyError(
            f"could not read the existing {ALARM_PREFIX} alarms: {e}; nothing was changed"
        ) from e


def _plan(
    client: Any, catalog: KpiCatalog, actions: Sequence[str]
) -> list[tuple[AlarmChange, dict[str, Any]]]:
    existing = {alarm["AlarmName"]: alarm for alarm in _existing_alarms(client)}
    plan: list[tuple[AlarmChange, dict[str, Any]]] = []
    for spec in alarm_specs(catalog, actions):
        name = spec["AlarmName"]
        current = existing.pop(name, None)
        if current is None:
            plan.append((AlarmChange("create", name), spec))
            continue
        want, have = _comparable(spec), _comparable(current)
        details = {key: (have[key], want[key]) for key in COMPARED_FIELDS if have[key] != want[key]}
        want_tags = {tag["Key"]: tag["Value"] for tag in spec["Tags"]}
        have_tags = _slipway_tags(client, current["AlarmArn"])
        if have_tags != want_tags:
            details["Tags"] = (have_tags, want_tags)
        if details:
            plan.append((AlarmChange("update", name, tuple(details), details), spec))
    for name in sorted(existing):
        plan.append((AlarmChange("delete", name), {}))
    return plan


def _existing_alarms(client: Any) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = []
    paginator = client.get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmNamePrefix=ALARM_PREFIX, AlarmTypes=["MetricAlarm"]):
        alarms.extend(page.get("MetricAlarms", []))
    return alarms


def _slipway_tags(client: Any, arn: str) -> dict[str, str]:
    tags = client.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    return {tag["Key"]: tag["Value"] for tag in tags if tag["Key"].startswith("slipway:")}


def _sync_tags(client: Any, name: str, tags: list[dict[str, str]]) -> None:
    # put_metric_alarm ignores Tags on an existing alarm: tags change through the tagging API.
    arn = client.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
    stale = set(_slipway_tags(client, arn)) - {tag["Key"] for tag in tags}
    if stale:
        client.untag_resource(ResourceARN=arn, TagKeys=sorted(stale))
    client.tag_resource(ResourceARN=arn, Tags=tags)


def _dimensions(dimensions: dict[str, str]) -> list[dict[str, str]]:
    return [{"Name": key, "Value": value} for key, value in sorted(dimensions.items())]


def _comparable(alarm: dict[str, Any]) -> dict[str, Any]:
    """The compared fields of a spec or a described alarm, in one normal form."""
    out: dict[str, Any] = {}
    for key in COMPARED_FIELDS:
        value = alarm.get(key)
        if key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            value = sorted(value or [])
        elif key == "Dimensions":
            value = _norm_dims(value)
        elif key == "Metrics":
            value = [_norm_query(query) for query in value or []] or None
        elif key == "Threshold" and value is not None:
            value = float(value)
        elif key in ("Period", "EvaluationPeriods", "DatapointsToAlarm") and value is not None:
            value = int(value)
        out[key] = value
    return out


def _norm_dims(dims: list[dict[str, str]] | None) -> list[tuple[str, str]]:
    return sorted((d["Name"], d["Value"]) for d in dims or [])


def _norm_query(query: dict[str, Any]) -> dict[str, Any]:
    stat = query.get("MetricStat")
    norm_stat = None
    if stat:
        metric = stat.get("Metric", {})
        norm_stat = {
            "Namespace": metric.get("Namespace"),
            "MetricName": metric.get("MetricName"),
            "Dimensions": _norm_dims(metric.get("Dimensions")),
            "Period": int(stat["Period"]) if stat.get("Period") is not None else None,
            "Stat": stat.get("Stat"),
        }
    return_data = query.get("ReturnData")
    if isinstance(return_data, str):
        return_data = return_data.lower() == "true"
    return {
        "Id": query.get("Id"),
        "Expression": query.get("Expression"),
        "Label": query.get("Label"),
        "ReturnData": True if return_data is None else bool(return_data),
        "MetricStat": norm_stat,
    }
