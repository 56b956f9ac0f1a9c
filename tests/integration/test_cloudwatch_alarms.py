"""CloudWatch alarms applied to a real moto server over HTTP: idempotent apply, field-level diff,
updates, pruning and the ``slipway alarms`` commands.

moto keeps one backend per region, so each test works in its own region.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from slipway.cli.alarms import app
from slipway.monitoring.cloudwatch import (
    AlarmChange,
    CloudWatchApplyError,
    apply_alarms,
    cloudwatch_client,
    diff_alarms,
)
from slipway.monitoring.dashboards import apply_cloudwatch_dashboard
from slipway.monitoring.kpis import KpiCatalog, load_kpi_catalog, parse_kpi_catalog
from tests.support import REPO
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

ROOT = REPO
CATALOG_PATH = ROOT / "monitoring" / "kpis.yaml"
TOPIC = "arn:aws:sns:{region}:123456789012:slipway-alerts"


@pytest.fixture(scope="module")
def catalog() -> KpiCatalog:
    return load_kpi_catalog(CATALOG_PATH)


def client_for(endpoint: str, region: str) -> Any:
    return cloudwatch_client(region, endpoint_url=endpoint)


def described(client: Any) -> dict[str, dict[str, Any]]:
    alarms = client.describe_alarms(AlarmNamePrefix="slipway-")["MetricAlarms"]
    drop = {"StateUpdatedTimestamp", "AlarmConfigurationUpdatedTimestamp", "StateReason"}
    return {a["AlarmName"]: {k: v for k, v in a.items() if k not in drop} for a in alarms}


def modified(**changes: Any) -> KpiCatalog:
    data = copy.deepcopy(yaml.safe_load(CATALOG_PATH.read_text()))
    for name, fields in changes.items():
        entry = next(k for k in data["kpis"] if k["name"] == name.replace("_", "-"))
        entry.update(fields)
    return parse_kpi_catalog(data)


def test_apply_twice_creates_once_then_reports_no_changes(
    aws_env: str, catalog: KpiCatalog
) -> None:
    region = "us-east-2"
    client = client_for(aws_env, region)
    topic = TOPIC.format(region=region)
    first = apply_alarms(client, catalog, [topic])
    assert [c.action for c in first] == ["create"] * len(catalog.kpis)
    after_first = described(client)
    assert sorted(after_first) == sorted(f"slipway-{k.name}" for k in catalog.kpis)

    assert diff_alarms(client, catalog, [topic]) == []
    assert apply_alarms(client, catalog, [topic]) == []
    assert described(client) == after_first


def test_alarms_are_explicit_about_missing_data_and_actions(
    aws_env: str, catalog: KpiCatalog
) -> None:
    region = "us-west-1"
    client = client_for(aws_env, region)
    topic = TOPIC.format(region=region)
    apply_alarms(client, catalog, [topic])
    alarms = described(client)
    for kpi in catalog.kpis:
        alarm = alarms[f"slipway-{kpi.name}"]
        assert alarm["TreatMissingData"] == kpi.treat_missing_data
        assert alarm["DatapointsToAlarm"] == kpi.datapoints_to_alarm <= alarm["EvaluationPeriods"]
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]
        assert alarm["Threshold"] == kpi.threshold
        assert alarm["ComparisonOperator"] == kpi.comparison
        tags = client.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {"Key": "slipway:kpi", "Value": kpi.name} in tags
    assert all("TreatMissingData" in a for a in alarms.values())
    assert alarms["slipway-p95-latency"]["ExtendedStatistic"] == "p95"
    math = alarms["slipway-mean-confidence-drop"]["Metrics"]
    assert math[0]["Id"] == "kpi"
    assert len(math) == 10


def test_threshold_change_is_diffed_then_applied(aws_env: str, catalog: KpiCatalog) -> None:
    region = "eu-west-1"
    client = client_for(aws_env, region)
    topic = TOPIC.format(region=region)
    apply_alarms(client, catalog, [topic])

    changed = modified(http_5xx_ratio={"threshold": 0.1})
    diff = diff_alarms(client, changed, [topic])
    assert diff == [AlarmChange("update", "slipway-http-5xx-ratio", ("Threshold",))]
    assert diff[0].details == {"Threshold": (0.05, 0.1)}
    assert described(client)["slipway-http-5xx-ratio"]["Threshold"] == 0.05  # diff changed nothing

    applied = apply_alarms(client, changed, [topic])
    assert applied == diff
    assert described(client)["slipway-http-5xx-ratio"]["Threshold"] == 0.1
    assert diff_alarms(client, changed, [topic]) == []
    # and back: the committed catalog now differs again
    assert [str(c) for c in diff_alarms(client, catalog, [topic])] == [
        "update slipway-http-5xx-ratio: Threshold"
    ]


def test_several_fields_tags_and_actions_are_compared(aws_env: str, catalog: KpiCatalog) -> None:
    region = "eu-central-1"
    client = client_for(aws_env, region)
    topic = TOPIC.format(region=region)
    apply_alarms(client, catalog, [topic])

    changed = modified(
        p95_latency={"evaluation_periods": 10, "datapoints_to_alarm": 8},
        feature_drift={"severity": "page"},
        model_load_failures={
            "treat_missing_data": "breaching",
            "comparison": "GreaterThanOrEqualToThreshold",
        },
    )
    other_topic = f"{topic}-2"
    diff = {c.alarm_name: c.fields for c in diff_alarms(client, changed, [topic, other_topic])}
    assert diff["slipway-p95-latency"] == (
        "AlarmActions",
        "OKActions",
        "EvaluationPeriods",
        "DatapointsToAlarm",
    )
    assert diff["slipway-feature-drift"] == ("AlarmActions", "OKActions", "Tags")
    assert diff["slipway-model-load-failures"] == (
        "AlarmActions",
        "OKActions",
        "ComparisonOperator",
    )
    assert len(diff) == len(catalog.kpis)  # the new topic touches every alarm

    apply_alarms(client, changed, [topic, other_topic])
    alarm = described(client)["slipway-feature-drift"]
    tags = client.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
    assert {"Key": "slipway:severity", "Value": "page"} in tags
    assert sorted(alarm["AlarmActions"]) == sorted([topic, other_topic])
    assert diff_alarms(client, changed, [topic, other_topic]) == []


def test_alarms_left_out_of_the_catalog_are_deleted_others_untouched(
    aws_env: str, catalog: KpiCatalog
) -> None:
    region = "ap-southeast-2"
    client = client_for(aws_env, region)
    topic = TOPIC.format(region=region)
    apply_alarms(client, catalog, [topic])
    for name in ("slipway-retired-kpi", "other-team-cpu"):
        client.put_metric_alarm(
            AlarmName=name,
            Namespace="Other",
            MetricName="cpu",
            Statistic="Average",
            Period=60,
            EvaluationPeriods=1,
            Threshold=90.0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="missing",
        )
    assert diff_alarms(client, catalog, [topic]) == [AlarmChange("delete", "slipway-retired-kpi")]
    assert apply_alarms(client, catalog, [topic], prune=False) == []
    assert "slipway-retired-kpi" in described(client)

    assert apply_alarms(client, catalog, [topic]) == [AlarmChange("delete", "slipway-retired-kpi")]
    names = {a["AlarmName"] for a in client.describe_alarms()["MetricAlarms"]}
    assert "slipway-retired-kpi" not in names
    assert "other-team-cpu" in names


def test_cli_apply_and_diff_against_the_endpoint(aws_env: str, catalog: KpiCatalog) -> None:
    region = "ca-central-1"
    runner = CliRunner()
    common = ["--catalog", str(CATALOG_PATH), "--endpoint-url", aws_env, "--region", region]
    topics = ["--sns-topic-arn", "arn:aws:sns:ca-central-1:123456789012:a"]
    topics += ["--sns-topic-arn", "arn:aws:sns:ca-central-1:123456789012:b"]

    before = runner.invoke(app, ["diff", *common, *topics])
    assert before.exit_code == 1
    assert before.output.count("create slipway-") == len(catalog.kpis)

    applied = runner.invoke(app, ["apply", *common, *topics])
    assert applied.exit_code == 0, applied.output
    assert applied.output.count("create slipway-") == len(catalog.kpis)
    assert "put dashboard slipway" in applied.output

    again = runner.invoke(app, ["apply", *common, *topics])
    assert again.exit_code == 0, again.output
    assert again.output.strip() == "no changes"
    after = runner.invoke(app, ["diff", *common, *topics])
    assert (after.exit_code, after.output.strip()) == (0, "no changes")

    client = client_for(aws_env, region)
    alarm = described(client)["slipway-traffic-stopped"]
    assert sorted(alarm["AlarmActions"]) == [
        "arn:aws:sns:ca-central-1:123456789012:a",
        "arn:aws:sns:ca-central-1:123456789012:b",
    ]
    assert client.get_dashboard(DashboardName="slipway")["DashboardBody"].startswith("{")


def test_cli_region_and_endpoint_default_to_the_settings(
    aws_env: str, catalog: KpiCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # boto3's own AWS_ENDPOINT_URL points at a closed port: only SLIPWAY_AWS_ENDPOINT_URL works
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("SLIPWAY_AWS_ENDPOINT_URL", aws_env)
    monkeypatch.setenv("SLIPWAY_AWS_REGION", "eu-west-3")
    monkeypatch.setenv("SLIPWAY_ALARM_TOPIC_ARN", "arn:aws:sns:eu-west-3:123456789012:settings")
    runner = CliRunner()

    applied = runner.invoke(app, ["apply", "--catalog", str(CATALOG_PATH)])
    assert applied.exit_code == 0, applied.output
    assert applied.output.count("create slipway-") == len(catalog.kpis)
    diffed = runner.invoke(app, ["diff", "--catalog", str(CATALOG_PATH)])
    assert (diffed.exit_code, diffed.output.strip()) == (0, "no changes")

    client = client_for(aws_env, "eu-west-3")
    alarm = described(client)["slipway-traffic-stopped"]
    assert alarm["AlarmActions"] == ["arn:aws:sns:eu-west-3:123456789012:settings"]
    assert '"region": "eu-west-3"' in client.get_dashboard(DashboardName="slipway")["DashboardBody"]


@pytest.fixture
def closed_endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An endpoint on 127.0.0.1 where nothing listens, with one attempt per call."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("command", ["diff", "apply"])
def test_cli_unreachable_endpoint_is_one_sentence_and_exit_2(
    closed_endpoint: str, command: str
) -> None:
    args = [command, "--catalog", str(CATALOG_PATH), "--endpoint-url", closed_endpoint]
    result = CliRunner().invoke(app, [*args, "--region", "eu-north-1", "--sns-topic-arn", "a"])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    error = result.stderr.strip().splitlines()
    assert len(error) == 1, result.stderr
    assert "could not read the existing slipway- alarms" in error[0]
    assert closed_endpoint in error[0]


def test_cli_invalid_setting_is_one_sentence_and_exit_2(
    closed_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_EFS_KEEP_VERSIONS", "0")
    result = CliRunner().invoke(app, ["diff", "--catalog", str(CATALOG_PATH)])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("invalid configuration: SLIPWAY_EFS_KEEP_VERSIONS=")


def test_dashboard_failure_is_a_cloudwatch_apply_error(
    closed_endpoint: str, catalog: KpiCatalog
) -> None:
    client = client_for(closed_endpoint, "eu-north-1")
    with pytest.raises(CloudWatchApplyError, match="could not put dashboard slipway") as caught:
        apply_cloudwatch_dashboard(client, catalog, "eu-north-1")
    assert closed_endpoint in str(caught.value)
