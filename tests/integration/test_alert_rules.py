"""The generated Prometheus rules, checked and unit-tested by Debian's real ``promtool``.

Every alert has three promtool cases (fires / quiet / absent). The last tests prove the cases
bite: rules generated from a changed catalog fail the committed cases.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from slipway.monitoring import alerts
from slipway.monitoring.kpis import load_kpi_catalog, parse_kpi_catalog
from tests.support import REPO

pytestmark = pytest.mark.integration

ROOT = REPO
RULES = ROOT / alerts.RULES_FILE
RULE_TESTS = ROOT / alerts.RULE_TESTS_FILE
CATALOG = ROOT / "monitoring" / "kpis.yaml"


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of ``promtool``, installed from Debian's ``prometheus`` package when missing."""
    if shutil.which("promtool") is None:
        subprocess.run(
            [str(ROOT / "scripts" / "ensure-debian-tools.sh"), "promtool:prometheus"],
            check=False,
            timeout=600,
        )
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is missing and could not be installed: run "
            "`scripts/ensure-debian-tools.sh promtool:prometheus` (Debian package prometheus)"
        )
    return path


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_promtool_checks_the_generated_rules_file(promtool: str) -> None:
    result = run([promtool, "check", "rules", str(RULES)], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    catalog = load_kpi_catalog(CATALOG)
    count = len(catalog.kpis) + len(catalog.recording_rules)
    assert f"SUCCESS: {count} rules found" in result.stdout + result.stderr


def test_promtool_checks_the_prometheusrule_groups(promtool: str, tmp_path: Path) -> None:
    resource = yaml.safe_load((ROOT / alerts.PROMETHEUS_RULE_FILE).read_text())
    extracted = tmp_path / "from-prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump({"groups": resource["spec"]["groups"]}))
    result = run([promtool, "check", "rules", str(extracted)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    # the check above can fail: a syntax error in an expression is reported
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(x"}]}]})
    )
    result = run([promtool, "check", "rules", str(broken)], tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_has_fires_quiet_and_absent_cases() -> None:
    catalog = load_kpi_catalog(CATALOG)
    document = yaml.safe_load(RULE_TESTS.read_text())
    assert document["rule_files"] == [RULES.name]
    seen: dict[str, dict[str, list]] = {}
    for group in document["tests"]:
        alertname, kind = group["name"].split(" ")
        assert group["input_series"], group["name"]
        checks = [c for c in group["alert_rule_test"] if c["alertname"] == alertname]
        assert checks, group["name"]
        seen.setdefault(alertname, {})[kind] = checks[-1]["exp_alerts"]
    for kpi in catalog.kpis:
        kinds = seen.get(kpi.alert_name, {})
        assert set(kinds) == {"fires", "quiet", "absent"}, kpi.alert_name
        assert len(kinds["fires"]) >= 1, kpi.alert_name
        assert kinds["quiet"] == [], kpi.alert_name
        if kpi.treat_missing_data == "breaching":
            assert [a["exp_labels"]["missing"] for a in kinds["absent"]] == ["true"], kpi.name
            assert kinds["absent"][0]["exp_annotations"]["summary"].endswith(": no data")
        else:
            assert kinds["absent"] == [], kpi.alert_name
        for alert in kinds["fires"]:
            assert alert["exp_labels"]["severity"] == kpi.severity
            assert alert["exp_annotations"]["runbook_url"] == catalog.runbook_url(kpi)


def test_promtool_unit_tests_pass(promtool: str) -> None:
    result = run([promtool, "test", "rules", RULE_TESTS.name], RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def _run_committed_cases_against(catalog_data: dict, promtool: str, tmp_path: Path) -> str:
    rules = alerts.render_rules_file(parse_kpi_catalog(catalog_data))
    (tmp_path / RULES.name).write_text(rules)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = run([promtool, "test", "rules", RULE_TESTS.name], tmp_path)
    assert result.returncode != 0, "the promtool cases did not notice the changed rules"
    return result.stdout + result.stderr


def test_cases_catch_a_threshold_that_no_longer_fires(promtool: str, tmp_path: Path) -> None:
    data = yaml.safe_load(CATALOG.read_text())
    changed = copy.deepcopy(data)
    index = next(i for i, k in enumerate(changed["kpis"]) if k["name"] == "http-5xx-ratio")
    changed["kpis"][index]["threshold"] = 0.2  # the fires case has a 10 % error ratio
    output = _run_committed_cases_against(changed, promtool, tmp_path)
    assert "SlipwayHttp5xxRatio fires" in output
    assert "SlipwayP95Latency" not in output


def test_cases_catch_a_lost_missing_data_branch(promtool: str, tmp_path: Path) -> None:
    data = yaml.safe_load(CATALOG.read_text())
    changed = copy.deepcopy(data)
    index = next(i for i, k in enumerate(changed["kpis"]) if k["name"] == "traffic-stopped")
    changed["kpis"][index]["treat_missing_data"] = "notBreaching"
    output = _run_committed_cases_against(changed, promtool, tmp_path)
    assert "SlipwayTrafficStopped absent" in output
    assert "SlipwayHttp5xxRatio" not in output  # the other alerts still pass


def test_cases_catch_a_shorter_for(promtool: str, tmp_path: Path) -> None:
    data = yaml.safe_load(CATALOG.read_text())
    changed = copy.deepcopy(data)
    index = next(i for i, k in enumerate(changed["kpis"]) if k["name"] == "positive-rate-drift")
    changed["kpis"][index]["prometheus"]["for"] = "5m"  # fires before pending_at (20m)
    output = _run_committed_cases_against(changed, promtool, tmp_path)
    assert "SlipwayPositiveRateDrift fires" in output
