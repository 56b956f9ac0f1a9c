"""The KPI catalog schema: the committed catalog is valid, and each kind of mistake is refused
with a message that names the KPI and the field."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.errors import SlipwayError
from slipway.monitoring.kpis import (
    KpiCatalogError,
    check_runbook_anchors,
    heading_anchors,
    load_kpi_catalog,
    parse_kpi_catalog,
)
from tests.support import REPO

ROOT = REPO
CATALOG = ROOT / "monitoring" / "kpis.yaml"
KPI_DOC = ROOT / "docs" / "kpis.md"

REQUIRED = {
    "service": {
        "p95-latency",
        "p99-latency",
        "http-5xx-ratio",
        "http-4xx-ratio-spike",
        "traffic-stopped",
        "replicas-unavailable",
    },
    "model": {
        "positive-rate-drift",
        "mean-confidence-drop",
        "feature-drift",
        "model-load-failures",
    },
    "pipeline": {
        "holdout-metric-low",
        "pipeline-run-failed",
        "data-validation-failed",
        "pipeline-run-duration",
        "pipeline-stale",
    },
}


def raw_catalog() -> dict[str, Any]:
    return yaml.safe_load(CATALOG.read_text())


def with_change(index: int, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw_catalog())
    data["kpis"][index].update(changes)
    return data


def test_committed_catalog_has_every_required_kpi_in_its_category() -> None:
    catalog = load_kpi_catalog(CATALOG)
    by_category: dict[str, set[str]] = {}
    for kpi in catalog.kpis:
        by_category.setdefault(kpi.category, set()).add(kpi.name)
    for category, names in REQUIRED.items():
        assert names <= by_category[category], names - by_category[category]


def test_committed_catalog_rules() -> None:
    catalog = load_kpi_catalog(CATALOG)
    for kpi in catalog.kpis:
        assert kpi.datapoints_to_alarm <= kpi.evaluation_periods
        if kpi.rollback:
            assert kpi.treat_missing_data == "breaching", kpi.name
    assert catalog.get("feature-drift").threshold == 0.2
    assert catalog.get("p95-latency").cloudwatch.extended_statistic == "p95"
    rollback = {kpi.name for kpi in catalog.kpis if kpi.rollback}
    assert {
        "p99-latency",
        "http-5xx-ratio",
        "positive-rate-drift",
        "model-load-failures",
    } <= rollback


def test_every_runbook_anchor_is_a_heading_of_docs_kpis_md() -> None:
    catalog = load_kpi_catalog(CATALOG)
    check_runbook_anchors(catalog, KPI_DOC.read_text())  # raises when one is missing
    anchors = heading_anchors(KPI_DOC.read_text())
    assert {kpi.runbook for kpi in catalog.kpis} <= anchors


def test_missing_runbook_anchor_is_reported_with_the_kpi_name() -> None:
    catalog = parse_kpi_catalog(with_change(1, runbook="no-such-heading"))
    with pytest.raises(KpiCatalogError, match="no matching heading") as info:
        check_runbook_anchors(catalog, KPI_DOC.read_text())
    assert "http-5xx-ratio -> #no-such-heading" in str(info.value)
    assert "p95-latency" not in str(info.value)


def test_heading_anchors_follow_github_rules_and_skip_code_blocks() -> None:
    text = "# Title\n## The `p95` latency!\n```\n# not a heading\n```\n### http-5xx-ratio\n"
    assert heading_anchors(text) == {"title", "the-p95-latency", "http-5xx-ratio"}


def test_datapoints_above_evaluation_periods_is_rejected() -> None:
    data = with_change(0, datapoints_to_alarm=6, evaluation_periods=5)
    with pytest.raises(KpiCatalogError) as info:
        parse_kpi_catalog(data, "kpis.yaml")
    message = str(info.value)
    assert "KPI 'p95-latency' (entry 1)" in message
    assert "datapoints_to_alarm (6) must be <= evaluation_periods (5)" in message
    assert message.startswith("kpis.yaml: invalid KPI catalog")


def test_unknown_comparison_is_rejected_naming_field_and_value() -> None:
    with pytest.raises(KpiCatalogError) as info:
        parse_kpi_catalog(with_change(2, comparison="GreaterThan"))
    message = str(info.value)
    assert "KPI 'http-4xx-ratio-spike' (entry 3), field comparison" in message
    assert "'GreaterThan'" in message
    assert "GreaterThanThreshold" in message  # the allowed values are listed


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(KpiCatalogError, match=r"field treshold: Extra inputs are not permitted"):
        parse_kpi_catalog(with_change(0, treshold=1))


def test_nested_unknown_field_is_rejected_with_its_path() -> None:
    data = copy.deepcopy(raw_catalog())
    data["kpis"][3]["cloudwatch"]["unit"] = "Count"
    with pytest.raises(KpiCatalogError, match=r"'traffic-stopped'.*field cloudwatch\.unit"):
        parse_kpi_catalog(data)


def test_rollback_kpi_must_treat_missing_data_as_breaching() -> None:
    with pytest.raises(KpiCatalogError, match="rollback is true") as info:
        parse_kpi_catalog(with_change(1, treat_missing_data="notBreaching"))
    assert "'http-5xx-ratio'" in str(info.value)


@pytest.mark.parametrize("value", ["Breaching", "", None])
def test_treat_missing_data_is_explicit_and_exact(value: Any) -> None:
    data = with_change(0)
    if value is None:
        del data["kpis"][0]["treat_missing_data"]
    else:
        data["kpis"][0]["treat_missing_data"] = value
    with pytest.raises(KpiCatalogError, match="field treat_missing_data"):
        parse_kpi_catalog(data)


def test_statistic_and_extended_statistic_are_exclusive() -> None:
    data = copy.deepcopy(raw_catalog())
    data["kpis"][0]["cloudwatch"]["statistic"] = "Average"
    with pytest.raises(KpiCatalogError, match="exactly one of statistic"):
        parse_kpi_catalog(data)
    data["kpis"][0]["cloudwatch"].pop("statistic")
    data["kpis"][0]["cloudwatch"]["extended_statistic"] = "95th"
    with pytest.raises(KpiCatalogError, match="'95th' is not a percentile"):
        parse_kpi_catalog(data)


def test_metric_math_ids_must_be_used_in_the_expression() -> None:
    data = copy.deepcopy(raw_catalog())
    data["kpis"][1]["cloudwatch"]["expression"] = "errors / 1"
    with pytest.raises(KpiCatalogError, match="'requests' is not used in the expression"):
        parse_kpi_catalog(data)


def test_cloudwatch_period_and_alarm_window_limits() -> None:
    data = copy.deepcopy(raw_catalog())
    data["kpis"][0]["cloudwatch"]["period"] = 90
    with pytest.raises(KpiCatalogError, match="period 90 must be 10, 20, 30 or a multiple of 60"):
        parse_kpi_catalog(data)
    too_long = with_change(0, evaluation_periods=2000, datapoints_to_alarm=1)
    with pytest.raises(KpiCatalogError, match="one-day limit"):
        parse_kpi_catalog(too_long)


@pytest.mark.parametrize("duration", ["5 minutes", "5", "m5", ""])
def test_prometheus_for_must_be_a_duration(duration: str) -> None:
    data = copy.deepcopy(raw_catalog())
    data["kpis"][0]["prometheus"]["for"] = duration
    with pytest.raises(
        KpiCatalogError, match=r"field prometheus\.for: .*not a Prometheus duration"
    ):
        parse_kpi_catalog(data)


def test_duplicate_names_are_rejected() -> None:
    data = copy.deepcopy(raw_catalog())
    data["kpis"].append(copy.deepcopy(data["kpis"][0]))
    with pytest.raises(KpiCatalogError, match="'p95-latency' appears twice"):
        parse_kpi_catalog(data)


def test_every_problem_is_listed_not_only_the_first() -> None:
    data = with_change(0, severity="urgent", category="infra")
    with pytest.raises(KpiCatalogError) as info:
        parse_kpi_catalog(data)
    lines = str(info.value).splitlines()
    assert any("field severity" in line and "'urgent'" in line for line in lines)
    assert any("field category" in line and "'infra'" in line for line in lines)


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(KpiCatalogError, match="does not exist"):
        load_kpi_catalog(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kpis: [\n")
    with pytest.raises(KpiCatalogError, match="not valid YAML"):
        load_kpi_catalog(bad)
    # the error is both a SlipwayError and a ValueError
    assert issubclass(KpiCatalogError, SlipwayError)
    assert issubclass(KpiCatalogError, ValueError)


def test_names_derive_alert_and_alarm_names() -> None:
    catalog = load_kpi_catalog(CATALOG)
    kpi = catalog.get("http-5xx-ratio")
    assert kpi.alert_name == "SlipwayHttp5xxRatio"
    assert kpi.alarm_name == "slipway-http-5xx-ratio"
    assert catalog.runbook_url(kpi) == "docs/kpis.md#http-5xx-ratio"
    with pytest.raises(KeyError, match="no KPI named 'nope'"):
        catalog.get("nope")


def test_every_metric_the_catalog_reads_is_in_the_metrics_contract() -> None:
    contract = (ROOT / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"`((?:slipway|kube|container)_[a-z_0-9]+)`", contract))
    catalog = load_kpi_catalog(CATALOG)
    for rule in catalog.recording_rules:
        used = set(re.findall(r"\b((?:slipway|kube|container)_[a-z_0-9]+)", rule.expr))
        assert used | {rule.record} <= documented, (rule.record, used - documented)
    for kpi in catalog.kpis:
        used = set(re.findall(r"\b((?:slipway|kube|container)_[a-z_0-9]+)", kpi.prometheus.expr))
        used |= set(kpi.cloudwatch.metric_names())
        stripped = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
        assert stripped <= documented, (kpi.name, stripped - documented)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("pod_cpu_ratio", "must match slipway_"),
        ("slipway:pod_cpu:ratio", "must match slipway_"),
        ("slipway_pod_restarts_total", "ends like a counter"),
        ("slipway_step_memory_bucket", "ends like a counter"),
    ],
)
def test_recording_rule_names_are_federated_and_read_as_gauges(record: str, message: str) -> None:
    data = copy.deepcopy(raw_catalog())
    data["recording_rules"][0]["record"] = record
    with pytest.raises(KpiCatalogError, match=message) as info:
        parse_kpi_catalog(data)
    assert "recording_rules.0.record" in str(info.value)


def test_recording_rules_are_unique_and_listed_as_recorded() -> None:
    catalog = load_kpi_catalog(CATALOG)
    assert {"slipway_pod_cpu_limit_ratio", "slipway_step_duration_seconds"} <= (
        catalog.recorded_metrics()
    )
    data = copy.deepcopy(raw_catalog())
    data["recording_rules"].append(copy.deepcopy(data["recording_rules"][0]))
    with pytest.raises(KpiCatalogError, match="'slipway_pod_cpu_limit_ratio' appears twice"):
        parse_kpi_catalog(data)


def test_machine_kpis_read_the_recorded_series_the_catalog_writes() -> None:
    catalog = load_kpi_catalog(CATALOG)
    machine = [kpi for kpi in catalog.kpis if kpi.category == "machine"]
    assert {k.name for k in machine} >= {
        "pod-cpu-near-limit",
        "pod-memory-near-limit",
        "pod-cpu-throttled",
        "pod-restarts",
        "pod-oom-killed",
        "step-peak-memory",
        "step-cpu-seconds",
        "step-duration",
    }
    for kpi in machine:
        names = set(kpi.cloudwatch.metric_names())
        assert names <= catalog.recorded_metrics(), kpi.name
        assert any(name in kpi.prometheus.expr for name in names), kpi.name
        assert not kpi.rollback, kpi.name
