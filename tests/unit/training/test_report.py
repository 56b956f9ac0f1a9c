"""The run report's HTML: decision, metrics and embedded figures, nothing external; atomic writes."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest

from slipway.data import ValidationReport
from slipway.training import RunReport, render_report, write_report
from slipway.training.figures import render_figures
from slipway.training.report import _prefixed

CANDIDATE = {"roc_auc": 0.99531, "f1": 0.9438, "log_loss": 0.121}
CHAMPION = {"roc_auc": 0.99012, "f1": 0.9302, "log_loss": 0.135}
PASSED = ValidationReport(rows=569).to_markdown("v2@8cd7b2be")


@pytest.fixture(scope="module")
def figures() -> dict[str, bytes]:
    return render_figures("binary", [0, 0, 1, 1, 1, 0], scores=[0.1, 0.4, 0.35, 0.8, 0.9, 0.2])


def _report(pngs: dict[str, bytes], **changes) -> RunReport:
    fields = {
        "run_id": "115a6911097941a2",
        "model_name": "slipway",
        "dataset": "v2@8cd7b2be (data/breast-cancer/v2.csv)",
        "validation": PASSED,
        "candidate": CANDIDATE,
        "champion": CHAMPION,
        "champion_version": "v1-20261101-0badcafe",
        "decision": "promote",
        "reason": "better than the champion: roc_auc 0.9953 vs champion v1 0.9901",
        "holdout_rows": 110,
        "figures": pngs,
    }
    return RunReport(**{**fields, **changes})


def test_the_page_shows_the_decision_reason_and_version_code(figures) -> None:
    page = render_report(
        _report(figures, version_code="v2-20261201-115a6911", registry_version="2")
    )
    assert "<h2>PROMOTED as v2-20261201-115a6911</h2>" in page
    assert '<code id="version-code">v2-20261201-115a6911</code> (registry version 2)' in page
    assert "better than the champion: roc_auc 0.9953 vs champion v1 0.9901" in page
    assert 'class="decision promoted"' in page


def test_before_promotion_the_page_says_approved_and_has_no_version_code(figures) -> None:
    page = render_report(_report(figures))
    assert "<h2>APPROVED for promotion</h2>" in page
    assert "version-code" not in page
    kept = render_report(_report(figures, decision="keep", reason="not better than the champion"))
    assert "<h2>NOT PROMOTED: champion kept</h2>" in kept
    assert 'class="decision keep"' in kept


def test_candidate_metrics_sit_beside_the_champions(figures) -> None:
    page = render_report(_report(figures))
    assert "<th>champion (v1-20261101-0badcafe)</th>" in page
    assert "<tr><th>roc_auc</th><td>0.9953</td><td>0.9901</td></tr>" in page
    assert "<tr><th>log_loss</th><td>0.1210</td><td>0.1350</td></tr>" in page
    first = render_report(_report(figures, champion={}, champion_version=None))
    assert "<th>champion (none yet)</th>" in first
    assert "<tr><th>f1</th><td>0.9438</td><td>-</td></tr>" in first


def test_the_figures_are_embedded_as_the_exact_png_bytes(figures) -> None:
    page = render_report(_report(figures))
    embedded = dict(re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)">', page))
    assert list(embedded) == list(figures)
    for name, data in embedded.items():
        assert base64.b64decode(data) == figures[name]
    assert "No figures were logged" in render_report(_report(figures, figures={}))


def test_the_page_needs_nothing_from_the_network(figures) -> None:
    page = render_report(_report(figures, version_code="v2-20261201-115a6911"))
    references = re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]+)', page)
    assert references, "expected the images' src"
    assert all(ref.startswith("data:image/png;base64,") for ref in references), references
    assert "http:" not in page
    assert "https:" not in page
    assert "<link" not in page
    assert "<script" not in page
    assert "@import" not in page
    assert re.search(r"<style>.*\.decision", page, re.S)


def test_run_data_is_escaped(figures) -> None:
    page = render_report(
        _report(figures, reason='<script src="https://x">alert(1)</script>', dataset="a & b")
    )
    assert "<script" not in page
    assert "&lt;script src=&quot;https://x&quot;&gt;" in page
    assert "a &amp; b" in page


def test_the_validation_result_is_summarised_from_its_report(figures) -> None:
    assert _report(figures).validation_summary == "passed, no violations (569 rows)"
    failed = ValidationReport(
        rows=80,
        violations=[
            {"column": "a", "check": "not_nullable", "failure": "nan", "rows": "3"},
            {"column": "b", "check": "isin", "failure": "7", "rows": "4"},
        ],
    ).to_markdown("v2@x")
    assert _report(figures, validation=failed).validation_summary == (
        "failed, 2 violation(s) (80 rows)"
    )
    assert _report(figures, validation="").validation_summary == "not recorded"
    page = render_report(_report(figures))
    assert '<strong id="validation">passed, no violations (569 rows)</strong>' in page
    assert "Rows: 569. Result: **passed**, no violations." in page  # the full report, folded


def test_a_champion_collapse_is_added_to_the_validation_report_kept_with_the_run(figures) -> None:
    from slipway.training import validation_with_findings

    problem = "likely a data problem: the champion scores 0.7012 on this holdout, 0.9950 recorded"
    assert validation_with_findings(PASSED, None) == PASSED
    kept = validation_with_findings(PASSED, problem)
    assert kept.startswith(PASSED.rstrip())
    assert "## Found by evaluate: likely a data problem" in kept
    assert problem in kept
    # the page's validation section shows it, the schema's verdict stays as validate-data's
    report = _report(figures, validation=kept)
    assert report.validation_summary == "passed, no violations (569 rows)"
    assert problem in render_report(report)


def test_metric_prefixes_leave_out_the_row_count() -> None:
    metrics = {"holdout_f1": 0.9, "holdout_rows": 110.0, "champion_holdout_f1": 0.8, "cv_f1": 0.7}
    assert _prefixed(metrics, "holdout_") == {"f1": 0.9}
    assert _prefixed(metrics, "champion_holdout_") == {"f1": 0.8}


def test_write_report_replaces_the_file_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "run-1.html"
    assert write_report("<p>first</p>", path) == path
    write_report("<p>second</p>", path)
    assert path.read_text() == "<p>second</p>"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["run-1.html"]


def test_a_failed_write_keeps_the_old_page_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch
) -> None:
    path = write_report("<p>old</p>", tmp_path / "run-1.html")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report("<p>new</p>", path)
    assert path.read_text() == "<p>old</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["run-1.html"]
