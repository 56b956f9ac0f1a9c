"""Pipeline metrics pushed to Debian's real ``prometheus-pushgateway`` and scraped back."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from slipway.orchestration.pipeline_metrics import PipelineRunMetrics, push_pipeline_metrics
from tests.support import REPO
from tests.support.processes import free_port, running

pytestmark = pytest.mark.integration


def _pushgateway_binary() -> str:
    found = shutil.which("prometheus-pushgateway")
    if found is None:
        subprocess.run(
            [
                str(REPO / "scripts" / "ensure-debian-tools.sh"),
                "prometheus-pushgateway:prometheus-pushgateway",
            ],
            check=False,
        )
        found = shutil.which("prometheus-pushgateway")
    if found is None:
        pytest.fail(
            "prometheus-pushgateway is required: scripts/ensure-debian-tools.sh "
            "prometheus-pushgateway:prometheus-pushgateway could not install it"
        )
    return found


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Pushgateway on 127.0.0.1 with its own persistence file."""
    binary = _pushgateway_binary()
    folder = tmp_path_factory.mktemp("pushgateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={folder / 'metrics.store'}",
    ]
    with running(argv, f"{url}/-/ready", folder / "pushgateway.log", timeout=30):
        yield url


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the gateway exposes, keyed by name and sorted labels."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _ours(samples: dict, model: str) -> dict[tuple[str, tuple], float]:
    """Our samples for ``model``, without the job/model/instance labels."""
    out = {}
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if name.startswith("slipway_pipeline_") and labels.get("model") == model:
            assert labels.pop("job") == "slipway-pipeline"
            labels.pop("model")
            labels.pop("instance", None)
            out[(name, tuple(sorted(labels.items())))] = value
    return out


def test_success_then_failure_keeps_the_last_success_time(pushgateway: str) -> None:
    model = "model-a"
    success = PipelineRunMetrics(
        duration_seconds=48.5,
        succeeded=True,
        holdout_metrics={"roc_auc": 0.991, "f1": 0.95},
        rows={"train": 455, "holdout": 114},
        promoted=True,
        finished_at=1_800_000_000.0,
    )
    assert push_pipeline_metrics(pushgateway, success, model=model) is True
    assert _ours(_scrape(pushgateway), model) == {
        ("slipway_pipeline_run_duration_seconds", ()): 48.5,
        ("slipway_pipeline_last_success_timestamp_seconds", ()): 1_800_000_000.0,
        ("slipway_pipeline_last_run_failed", ()): 0.0,
        ("slipway_pipeline_data_validation_failed", ()): 0.0,
        ("slipway_pipeline_holdout_metric", (("metric", "roc_auc"),)): 0.991,
        ("slipway_pipeline_holdout_metric", (("metric", "f1"),)): 0.95,
        ("slipway_pipeline_rows", (("split", "train"),)): 455.0,
        ("slipway_pipeline_rows", (("split", "holdout"),)): 114.0,
        ("slipway_pipeline_promoted", ()): 1.0,
    }

    failure = PipelineRunMetrics(
        duration_seconds=7.25, succeeded=False, data_validation_failed=True
    )
    assert push_pipeline_metrics(pushgateway, failure, model=model) is True
    after = _ours(_scrape(pushgateway), model)
    assert after[("slipway_pipeline_last_run_failed", ())] == 1.0
    assert after[("slipway_pipeline_data_validation_failed", ())] == 1.0
    assert after[("slipway_pipeline_run_duration_seconds", ())] == 7.25
    assert after[("slipway_pipeline_promoted", ())] == 0.0
    # a failed run does not erase the last success (pipeline-stale would page otherwise)
    assert after[("slipway_pipeline_last_success_timestamp_seconds", ())] == 1_800_000_000.0
    # ...and the last candidate's holdout metrics stay what they were
    assert after[("slipway_pipeline_holdout_metric", (("metric", "roc_auc"),))] == 0.991


def test_holdout_family_is_replaced_whole(pushgateway: str) -> None:
    model = "model-b"
    first = PipelineRunMetrics(1.0, True, holdout_metrics={"roc_auc": 0.9, "f1": 0.8})
    second = PipelineRunMetrics(2.0, True, holdout_metrics={"roc_auc": 0.97})
    assert push_pipeline_metrics(pushgateway, first, model=model)
    assert push_pipeline_metrics(pushgateway, second, model=model)
    holdout = {
        labels: value
        for (name, labels), value in _ours(_scrape(pushgateway), model).items()
        if name == "slipway_pipeline_holdout_metric"
    }
    assert holdout == {(("metric", "roc_auc"),): 0.97}


def test_groups_are_per_model(pushgateway: str) -> None:
    push_pipeline_metrics(pushgateway, PipelineRunMetrics(3.0, True), model="model-c")
    push_pipeline_metrics(pushgateway, PipelineRunMetrics(4.0, False), model="model-d")
    samples = _scrape(pushgateway)
    assert _ours(samples, "model-c")[("slipway_pipeline_run_duration_seconds", ())] == 3.0
    assert _ours(samples, "model-d")[("slipway_pipeline_run_duration_seconds", ())] == 4.0
    assert ("slipway_pipeline_last_success_timestamp_seconds", ()) not in _ours(samples, "model-d")


def test_gateway_down_warns_and_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="slipway.orchestration.pipeline_metrics"):
        assert push_pipeline_metrics(url, PipelineRunMetrics(1.0, True), model="m") is False
    assert time.monotonic() - started < 5
    assert f"could not push pipeline metrics to {url}" in caplog.text


def test_no_url_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert push_pipeline_metrics(None, PipelineRunMetrics(1.0, True), model="m") is False
    assert caplog.text == ""


def test_reporting_step_failure_ends_the_run_as_failed(pushgateway: str) -> None:
    from slipway.orchestration.step_metrics import RUN_STARTED_KEY, reporting_step

    model = "model-e"
    with reporting_step("pull-data", pushgateway, model) as report:
        report.dataset_rows = 569
    started = {RUN_STARTED_KEY: report.run_started_at}
    with (
        pytest.raises(ValueError, match="bad rows"),
        reporting_step("validate-data", pushgateway, model, started),
    ):
        raise ValueError("bad rows")
    ours = _ours(_scrape(pushgateway), model)
    assert ours[("slipway_pipeline_last_run_failed", ())] == 1.0
    assert ours[("slipway_pipeline_data_validation_failed", ())] == 1.0
    assert ours[("slipway_pipeline_promoted", ())] == 0.0
    assert ours[("slipway_pipeline_rows", (("split", "dataset"),))] == 569.0
    assert ours[("slipway_pipeline_step_failed", (("step", "validate-data"),))] == 1.0
    assert ours[("slipway_pipeline_step_failed", (("step", "pull-data"),))] == 0.0
    assert ("slipway_pipeline_last_success_timestamp_seconds", ()) not in ours


def test_compiled_pipeline_reports_its_kpis(pushgateway: str, tmp_path) -> None:
    """The compiled YAML, run under kfp.local by ``slipway run``, pushes from its own tasks."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update(
        {
            "SLIPWAY_STATE_DIR": str(tmp_path / "state"),
            "SLIPWAY_PUSHGATEWAY_URL": pushgateway,
            "COLUMNS": "200",
        }
    )
    before = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "slipway", "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ours = _ours(_scrape(pushgateway), "slipway")
    assert ours[("slipway_pipeline_last_run_failed", ())] == 0.0
    assert ours[("slipway_pipeline_data_validation_failed", ())] == 0.0
    assert ours[("slipway_pipeline_last_success_timestamp_seconds", ())] >= before
    assert 0 < ours[("slipway_pipeline_run_duration_seconds", ())] < time.time() - before
    steps = ("pull-data", "validate-data", "search", "evaluate", "promote")
    for step in steps:
        assert ours[("slipway_pipeline_step_duration_seconds", (("step", step),))] > 0, step
        assert ours[("slipway_pipeline_step_failed", (("step", step),))] == 0.0, step
    assert ours[("slipway_pipeline_rows", (("split", "dataset"),))] == 569.0  # v2
    # a fresh state has no champion: the candidate is promoted
    assert ours[("slipway_pipeline_promotion_decision", ())] == 1.0
    assert ours[("slipway_pipeline_promoted", ())] == 1.0
    assert 0.9 < ours[("slipway_pipeline_holdout_metric", (("metric", "roc_auc"),))] <= 1.0
    # the run duration covers the steps (one clock, started by pull-data)
    assert ours[("slipway_pipeline_run_duration_seconds", ())] >= sum(
        ours[("slipway_pipeline_step_duration_seconds", (("step", s),))] for s in steps
    )
    # the tasks push, the CLI does not push again: one group per step plus the run's
    groups = {
        tuple(sorted(labels))
        for (name, labels), _ in _scrape(pushgateway).items()
        if name == "push_time_seconds" and dict(labels).get("model") == "slipway"
    }
    assert len(groups) == len(steps) + 1
