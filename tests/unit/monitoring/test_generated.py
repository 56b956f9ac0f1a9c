"""Files generated from the KPI catalog: the committed ones are up to date (golden), and each
generator keeps the properties the alerts and alarms rely on."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from slipway.errors import KpiCatalogError
from slipway.monitoring import alerts, cwagent, dashboards
from slipway.monitoring.cloudwatch import alarm_specs
from slipway.monitoring.generated import render_generated, write_generated
from slipway.monitoring.kpis import load_kpi_catalog, parse_kpi_catalog
from tests.support import REPO

ROOT = REPO
CATALOG_PATH = ROOT / "monitoring" / "kpis.yaml"
TOPIC = "arn:aws:sns:us-east-1:123456789012:slipway-alerts"


@pytest.fixture(scope="module")
def catalog():
    return load_kpi_catalog(CATALOG_PATH)


def test_committed_generated_files_are_up_to_date(catalog) -> None:
    stale = []
    for path, content in render_generated(catalog, ROOT).items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(str(path.relative_to(ROOT)))
    assert not stale, f"run `slipway alarms generate` and commit: {stale}"


def test_write_generated_writes_every_file_and_no_temporary(catalog, tmp_path: Path) -> None:
    (tmp_path / "monitoring" / "prometheus").mkdir(parents=True)
    shutil.copy(ROOT / alerts.RULE_CASES_FILE, tmp_path / alerts.RULE_CASES_FILE)
    written = write_generated(catalog, tmp_path)
    assert len(written) == 9  # 7 monitoring files + the mirror allowlist + the guard catalog
    assert {p.relative_to(tmp_path).as_posix() for p in written} >= {
        alerts.RULES_FILE,
        alerts.PROMETHEUS_RULE_FILE,
        alerts.RULE_TESTS_FILE,
        dashboards.GRAFANA_FILE,
        cwagent.AGENT_FILE,
    }
    for path in written:
        assert path.read_text() == (ROOT / path.relative_to(tmp_path)).read_text()
    leftovers = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert leftovers == []


def test_write_generated_without_cases_writes_nothing(catalog, tmp_path: Path) -> None:
    with pytest.raises(KpiCatalogError, match=r"slipway-alerts\.cases\.yaml does not exist"):
        write_generated(catalog, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_rule_tests_refuse_a_kpi_without_all_three_cases(catalog) -> None:
    cases = yaml.safe_load((ROOT / alerts.RULE_CASES_FILE).read_text())
    del cases["cases"]["feature-drift"]["absent"]
    with pytest.raises(KpiCatalogError, match="'feature-drift' has no absent case"):
        alerts.render_rule_tests(catalog, cases)
    cases["cases"]["not-a-kpi"] = {}
    with pytest.raises(KpiCatalogError, match="unknown KPIs \\['not-a-kpi'\\]"):
        alerts.render_rule_tests(catalog, cases)


def test_rules_have_labels_annotations_and_the_missing_branch_only_when_breaching(catalog) -> None:
    groups = yaml.safe_load(alerts.render_rules_file(catalog))["groups"]
    assert [g["name"] for g in groups] == [
        "slipway-recording",
        "slipway-service",
        "slipway-model",
        "slipway-pipeline",
        "slipway-machine",
    ]
    recorded = [rule["record"] for rule in groups[0]["rules"]]
    assert recorded == [rule.record for rule in catalog.recording_rules]
    # a record is written before any rule that reads it (rules of a group run in order)
    for index, rule in enumerate(groups[0]["rules"]):
        later = set(recorded[index:])
        assert not any(name in rule["expr"] for name in later - {rule["record"]}), rule["record"]
    rules = {rule["alert"]: rule for group in groups[1:] for rule in group["rules"]}
    assert len(rules) == len(catalog.kpis)
    for kpi in catalog.kpis:
        rule = rules[kpi.alert_name]
        assert rule["labels"]["severity"] == kpi.severity
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"].endswith(f"#{kpi.runbook}")
        assert rule["for"] == kpi.prometheus.for_
        assert ("absent(" in rule["expr"]) == (kpi.treat_missing_data == "breaching"), kpi.name
    assert rules["SlipwayHttp5xxRatio"]["expr"].startswith("((sum(rate(")
    assert "\n  > 0.05\nor\n" in rules["SlipwayHttp5xxRatio"]["expr"]
    assert "< 0.75" in rules["SlipwayMeanConfidenceDrop"]["expr"]
    assert "> 3600" in rules["SlipwayPipelineRunDuration"]["expr"]


def test_prometheus_rule_resource_holds_the_same_groups(catalog) -> None:
    resource = yaml.safe_load(alerts.render_prometheus_rule(catalog))
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["name"] == "slipway-alerts"
    plain = yaml.safe_load(alerts.render_rules_file(catalog))
    assert resource["spec"]["groups"] == plain["groups"]


def test_alarm_specs_are_complete_and_explicit(catalog) -> None:
    specs = alarm_specs(catalog, [TOPIC])
    assert [s["AlarmName"] for s in specs] == [f"slipway-{k.name}" for k in catalog.kpis]
    for spec in specs:
        assert spec["TreatMissingData"] in {"breaching", "notBreaching", "ignore", "missing"}
        assert 1 <= spec["DatapointsToAlarm"] <= spec["EvaluationPeriods"]
        assert spec["AlarmActions"] == [TOPIC]
        assert spec["OKActions"] == [TOPIC]
        assert {"Key": "slipway:managed-by", "Value": "slipway"} in spec["Tags"]
        assert len(spec["AlarmDescription"]) <= 1024
        single = "MetricName" in spec
        assert single != ("Metrics" in spec)
        if single:
            assert ("Statistic" in spec) != ("ExtendedStatistic" in spec)
        else:
            returned = [q["Id"] for q in spec["Metrics"] if q["ReturnData"]]
            assert returned == ["kpi"]
    by_name = {s["AlarmName"]: s for s in specs}
    assert by_name["slipway-p95-latency"]["ExtendedStatistic"] == "p95"
    assert by_name["slipway-http-5xx-ratio"]["TreatMissingData"] == "breaching"
    assert (
        by_name["slipway-http-5xx-ratio"]["Metrics"][0]["Expression"]
        == "FILL(errors, 0) / requests"
    )


def test_agent_config_declares_counters_and_gauges_but_not_histograms(catalog) -> None:
    docs = list(yaml.safe_load_all(cwagent.render_agent_configmaps(catalog)))
    assert [d["metadata"]["name"] for d in docs] == [
        "prometheus-config",
        "prometheus-cwagentconfig",
        "cwagentconfig",
    ]
    insights = json.loads(docs[2]["data"]["cwagentconfig.json"])
    assert insights["logs"]["metrics_collected"]["kubernetes"]["enhanced_container_insights"]
    agent = json.loads(docs[1]["data"]["cwagentconfig.json"])
    emf = agent["logs"]["metrics_collected"]["prometheus"]["emf_processor"]
    assert emf["metric_namespace"] == "Slipway"
    selectors = {s for d in emf["metric_declaration"] for s in d["metric_selectors"]}
    assert "^slipway_http_requests_total$" in selectors
    assert "^kube_deployment_status_replicas_unavailable$" in selectors
    assert not any("duration_seconds$" in s and "pipeline" not in s for s in selectors)
    assert not any("prediction_score" in s for s in selectors)
    # recorded series live in Prometheus only: the mirror publishes them, the agent cannot
    assert catalog.recorded_metrics()
    assert not any(s.strip("^$") in catalog.recorded_metrics() for s in selectors)
    requests = next(
        d
        for d in emf["metric_declaration"]
        if "^slipway_http_requests_total$" in d["metric_selectors"]
    )
    assert requests["dimensions"] == [["route"], ["route", "status_class"]]
    assert requests["label_matcher"] == "^slipway-server$"
    scrape = yaml.safe_load(docs[0]["data"]["prometheus.yaml"])
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["slipway-pipeline"]["honor_labels"] is True
    keep = jobs["slipway-server"]["metric_relabel_configs"][0]["regex"].split("|")
    assert "slipway_predictions_total" in keep
    assert "slipway_prediction_score_bucket" not in keep


def test_every_alarm_metric_is_in_the_allowlist_with_its_dimensions(catalog) -> None:
    allow = cwagent.metric_dimension_sets(catalog)
    for spec in alarm_specs(catalog, []):
        metrics = (
            [(spec["MetricName"], spec["Dimensions"])]
            if "MetricName" in spec
            else [
                (q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Metric"]["Dimensions"])
                for q in spec["Metrics"]
                if "MetricStat" in q
            ]
        )
        for name, dims in metrics:
            assert sorted(d["Name"] for d in dims) in allow[name]


def test_grafana_dashboard_has_a_panel_per_kpi_with_its_threshold(catalog) -> None:
    dashboard = json.loads(dashboards.render_grafana_dashboard(catalog))
    panels = [p for p in dashboard["panels"] if p["type"] == "timeseries"]
    assert len(panels) == len(catalog.kpis)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    by_expr = {p["targets"][0]["expr"]: p for p in panels}
    latency = by_expr[catalog.get("p95-latency").prometheus.expr.strip()]
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "green", "value": None}, {"color": "red", "value": 0.25}]
    assert latency["fieldConfig"]["defaults"]["unit"] == "s"
    confidence = by_expr[catalog.get("mean-confidence-drop").prometheus.expr.strip()]
    assert confidence["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["color"] == "red"


def test_cloudwatch_dashboard_widgets(catalog) -> None:
    body = json.loads(dashboards.render_cloudwatch_dashboard(catalog, "eu-west-1"))
    metric_widgets = [w for w in body["widgets"] if w["type"] == "metric"]
    assert len(metric_widgets) == len(catalog.kpis)
    assert {w["properties"]["region"] for w in metric_widgets} == {"eu-west-1"}
    for widget in body["widgets"]:
        assert widget["x"] + widget["width"] <= 24


def test_threshold_change_shows_in_the_generated_rule(catalog) -> None:
    data = yaml.safe_load(CATALOG_PATH.read_text())
    changed = copy.deepcopy(data)
    changed["kpis"][0]["threshold"] = 0.5
    groups = yaml.safe_load(alerts.render_rules_file(parse_kpi_catalog(changed)))["groups"]
    # another KPI (pod-cpu-throttled) also uses 0.25: look at the changed rule itself
    rules = {rule.get("alert"): rule["expr"] for group in groups for rule in group["rules"]}
    assert "\n  > 0.5" in rules["SlipwayP95Latency"]
    assert "> 0.25" not in rules["SlipwayP95Latency"]


def test_cli_generate_writes_the_files_and_checks_runbook_anchors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from slipway.cli.alarms import app

    (tmp_path / "docs").mkdir()
    (tmp_path / "monitoring" / "prometheus").mkdir(parents=True)
    shutil.copy(ROOT / alerts.RULE_CASES_FILE, tmp_path / alerts.RULE_CASES_FILE)
    kpi_doc = (ROOT / "docs" / "kpis.md").read_text()
    (tmp_path / "docs" / "kpis.md").write_text(kpi_doc.replace("### feature-drift", "### drift"))
    argv = ["generate", "--catalog", str(CATALOG_PATH), "--root", str(tmp_path)]

    refused = CliRunner().invoke(app, argv)
    assert refused.exit_code == 2
    assert "feature-drift -> #feature-drift" in refused.output
    assert not (tmp_path / alerts.RULES_FILE).exists()

    (tmp_path / "docs" / "kpis.md").write_text(kpi_doc)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert result.output.count("wrote ") == 9
    assert "manifests/monitoring/mirror-allowlist.yaml" in result.output
    generated = (tmp_path / alerts.RULES_FILE).read_text()
    assert generated == (ROOT / alerts.RULES_FILE).read_text()


def test_guard_catalog_configmap_is_a_catalog_with_the_rollback_kpis_only(catalog) -> None:
    from slipway.monitoring.generated import render_guard_catalog_configmap
    from slipway.monitoring.kpis import parse_kpi_catalog

    configmap = yaml.safe_load(render_guard_catalog_configmap(catalog))
    assert configmap["metadata"]["name"] == "slipway-guard-catalog"
    reduced = parse_kpi_catalog(yaml.safe_load(configmap["data"]["kpis.yaml"]))
    assert reduced.guard == catalog.guard
    assert [k.name for k in reduced.kpis] == [k.name for k in catalog.kpis if k.rollback]
    assert all(k == catalog.get(k.name) for k in reduced.kpis)
