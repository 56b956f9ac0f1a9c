"""The mirror end to end: a real prometheus_client exporter -> the mirror -> moto_server.

What the alarms will read is checked with ``get_metric_data`` over HTTP: gauges, counter
increases, histogram distributions; a CloudWatch outage (moto stopped, restarted on the same
port) loses and duplicates nothing; N points take ceil(N / 1000) calls and no call exceeds 1 MB.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from slipway.monitoring.kpis import load_kpi_catalog
from slipway.monitoring.mirror import (
    Converter,
    DimensionRules,
    Mirror,
    MirrorMetrics,
    Publisher,
    PublishLimits,
    mirror_client,
)
from tests.support import REPO
from tests.support.processes import free_port, moto_server

pytestmark = pytest.mark.integration

INFER = "/v2/models/{name}/infer"


@pytest.fixture
def exporter() -> Iterator[tuple[CollectorRegistry, str]]:
    """A registry we control, exposed over HTTP on 127.0.0.1."""
    registry = CollectorRegistry()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield registry, f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        thread.join(5)


def _creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _mirror(target: str, endpoint: str, rules: DimensionRules, **publisher: Any) -> Mirror:
    metrics = MirrorMetrics(CollectorRegistry())
    client = mirror_client(
        "us-east-1", endpoint, max_attempts=2, connect_timeout=1, read_timeout=10
    )
    return Mirror(
        [target],
        Converter(rules),
        Publisher(client, metrics, limits=PublishLimits(**publisher)),
        metrics,
    )


def _stat(endpoint: str, name: str, dims: dict[str, str], stat: str) -> float | None:
    """One statistic over the last hour (one period), as an alarm would query it."""
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=endpoint)
    now = datetime.now(UTC)
    metric = {
        "Namespace": "Slipway",
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
    }
    result = cw.get_metric_data(
        MetricDataQueries=[
            {"Id": "q", "MetricStat": {"Metric": metric, "Period": 7200, "Stat": stat}}
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
    )["MetricDataResults"][0]
    assert len(result["Values"]) <= 1, result
    return result["Values"][0] if result["Values"] else None


def test_gauge_counter_and_histogram_reach_cloudwatch(
    exporter: tuple[CollectorRegistry, str], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _creds(monkeypatch)
    registry, url = exporter
    model = f"m-{uuid.uuid4().hex[:8]}"  # the shared moto server: our own dimension values
    route = f"/test/{uuid.uuid4().hex[:8]}"
    requests = Counter(
        "slipway_http_requests", "r", ["route", "method", "status_class"], registry=registry
    )
    latency = Histogram(
        "slipway_http_request_duration_seconds", "l", ["route", "method"], registry=registry
    )
    score = Histogram(
        "slipway_prediction_score",
        "s",
        ["model", "version"],
        buckets=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        registry=registry,
    )
    psi = Gauge("slipway_feature_psi", "p", ["model", "version", "feature"], registry=registry)
    requests.labels(route, "POST", "2xx").inc(3)
    requests.labels(route, "POST", "5xx").inc(1)
    psi.labels(model, "v1", "mean_radius").set(0.1)
    psi.labels(model, "v1", "mean_area").set(0.3)
    score.labels(model, "v1").observe(0.5)

    rules = DimensionRules.from_catalog(load_kpi_catalog(REPO / "monitoring" / "kpis.yaml"))
    mirror = _mirror(url, moto_endpoint, rules)
    assert mirror.tick() > 0  # baseline: gauges only
    requests.labels(route, "POST", "2xx").inc(5)
    requests.labels(route, "GET", "2xx").inc(1)
    requests.labels(route, "POST", "5xx").inc(2)
    for value in (0.003, 0.003, 0.003, 0.003, 0.3):
        latency.labels(route, "POST").observe(value)
    for value in (0.05, 0.05, 0.35, 0.95):
        score.labels(model, "v1").observe(value)
    psi.labels(model, "v1", "mean_radius").set(0.5)
    mirror.tick()
    assert mirror.publisher.pending == 0

    # counters: the increase between the two scrapes, summed over the other labels
    assert _stat(moto_endpoint, "slipway_http_requests_total", {"route": route}, "Sum") == 8
    five = {"route": route, "status_class": "5xx"}
    assert _stat(moto_endpoint, "slipway_http_requests_total", five, "Sum") == 2
    # gauges: every series value of each scrape
    dims = {"model": model}
    assert _stat(moto_endpoint, "slipway_feature_psi", dims, "Maximum") == 0.5
    assert _stat(moto_endpoint, "slipway_feature_psi", dims, "Minimum") == 0.1
    assert _stat(moto_endpoint, "slipway_feature_psi", dims, "SampleCount") == 4
    # the latency histogram as a distribution at the bucket upper bounds (p95 reads this)
    name, dims = "slipway_http_request_duration_seconds", {"route": route}
    assert _stat(moto_endpoint, name, dims, "SampleCount") == 5
    assert _stat(moto_endpoint, name, dims, "Minimum") == 0.005
    assert _stat(moto_endpoint, name, dims, "Maximum") == 0.5
    assert math.isclose(_stat(moto_endpoint, name, dims, "Sum"), 4 * 0.005 + 0.5)
    # the prediction-score buckets and count the mean-confidence alarm reads
    bucket = "slipway_prediction_score_bucket"
    assert _stat(moto_endpoint, bucket, {"model": model, "le": "0.1"}, "Sum") == 2
    assert _stat(moto_endpoint, bucket, {"model": model, "le": "0.4"}, "Sum") == 3
    assert _stat(moto_endpoint, bucket, {"model": model, "le": "1.0"}, "Sum") == 4
    assert _stat(moto_endpoint, "slipway_prediction_score_count", {"model": model}, "Sum") == 4
    # metrics no alarm reads are not published
    assert (
        _stat(moto_endpoint, "slipway_feature_psi", {"model": model, "version": "v1"}, "Sum")
        is None
    )

    registry_metrics = mirror.metrics.registry
    assert registry_metrics.get_sample_value("slipway_mirror_buffered_points") == 0
    assert (
        registry_metrics.get_sample_value("slipway_mirror_put_calls_total", {"outcome": "ok"}) == 2
    )


def test_outage_buffers_and_delivers_every_point_exactly_once(
    exporter: tuple[CollectorRegistry, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our own moto_server, stopped for a while and restarted on the same port."""
    _creds(monkeypatch)
    registry, url = exporter
    tick_gauge = Gauge("outage_tick", "tick number", ["job"], registry=registry)
    events = Counter("outage_events", "events", ["job"], registry=registry)
    rules = DimensionRules.from_mapping(
        {"outage_tick": [["job"]], "outage_events_total": [["job"]]}
    )
    port = free_port()
    dims = {"job": "outage"}

    with moto_server(tmp_path / "moto-1.log", port=port) as endpoint:
        mirror = _mirror(url, endpoint, rules, backoff_base=0.2, backoff_max=1.0)
        for tick in (1, 2, 3):
            tick_gauge.labels("outage").set(tick)
            events.labels("outage").inc(tick)  # baseline at tick 1, then +2, +3
            mirror.tick()
        assert mirror.publisher.pending == 0
        assert _stat(endpoint, "outage_tick", dims, "Sum") == 1 + 2 + 3
        assert _stat(endpoint, "outage_events_total", dims, "Sum") == 2 + 3

    # CloudWatch unreachable: ticks 4..7 are buffered
    for tick in (4, 5, 6, 7):
        tick_gauge.labels("outage").set(tick)
        events.labels("outage").inc(tick)
        mirror.tick()
        time.sleep(0.3)
    assert mirror.publisher.pending == 8  # one gauge and one counter point per tick
    samples = mirror.metrics.registry.get_sample_value
    assert samples("slipway_mirror_buffered_points") == 8
    assert samples("slipway_mirror_lag_seconds") > 0
    assert samples("slipway_mirror_put_calls_total", {"outcome": "error"}) >= 1

    with moto_server(tmp_path / "moto-2.log", port=port) as endpoint:
        deadline = time.monotonic() + 30
        while mirror.publisher.pending and time.monotonic() < deadline:
            time.sleep(0.3)
            mirror.publisher.flush()
        assert mirror.publisher.pending == 0
        # the restarted server saw exactly the outage points, once each
        assert _stat(endpoint, "outage_tick", dims, "SampleCount") == 4
        assert _stat(endpoint, "outage_tick", dims, "Sum") == 4 + 5 + 6 + 7
        assert _stat(endpoint, "outage_tick", dims, "Minimum") == 4
        assert _stat(endpoint, "outage_events_total", dims, "SampleCount") == 4
        assert _stat(endpoint, "outage_events_total", dims, "Sum") == 4 + 5 + 6 + 7
        assert samples("slipway_mirror_lag_seconds") == 0
        assert samples("slipway_mirror_dropped_points_total", {"reason": "buffer_full"}) == 0


def _count_calls(client: Any) -> list[int]:
    """Body size (uncompressed, as urlencoded) of every PutMetricData call the client makes."""
    sizes: list[int] = []

    def hook(params: dict, **_: Any) -> None:
        body = params["body"]
        sizes.append(len(urlencode(body) if isinstance(body, dict) else body))

    client.meta.events.register("before-call.cloudwatch.PutMetricData", hook)
    return sizes


@pytest.mark.parametrize("series", [1000, 2500])
def test_n_points_take_ceil_n_over_1000_calls(
    series: int,
    exporter: tuple[CollectorRegistry, str],
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _creds(monkeypatch)
    registry, url = exporter
    gauge = Gauge("batch_gauge", "g", ["series", "run"], registry=registry)
    run = uuid.uuid4().hex[:8]
    for i in range(series):
        gauge.labels(str(i), run).set(i)
    mirror = _mirror(
        url, moto_endpoint, DimensionRules.from_mapping({"batch_gauge": [["run", "series"]]})
    )
    sizes = _count_calls(mirror.publisher.client)
    assert mirror.tick() == series
    assert len(sizes) == math.ceil(series / 1000)
    assert mirror.publisher.pending == 0
    for i in (0, series - 1):
        assert _stat(moto_endpoint, "batch_gauge", {"run": run, "series": str(i)}, "Maximum") == i


def test_no_call_exceeds_1_mb(
    exporter: tuple[CollectorRegistry, str], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _creds(monkeypatch)
    registry, url = exporter
    labels = [f"d{i:02d}" for i in range(30)]  # CloudWatch's maximum
    gauge = Gauge("big_gauge", "g", ["series", *labels], registry=registry)
    run = uuid.uuid4().hex
    long_value = run + "x" * (1024 - len(run))  # the longest dimension value CloudWatch takes
    count = 120
    for i in range(count):
        gauge.labels(str(i), *([long_value] * 30)).set(i)
    rules = DimensionRules.from_mapping({"big_gauge": [[*labels[:29], "series"]]})
    mirror = _mirror(url, moto_endpoint, rules)
    sizes = _count_calls(mirror.publisher.client)
    mirror.tick()
    assert mirror.publisher.pending == 0
    assert max(sizes) <= 1_000_000 < sum(sizes)  # more than 1 MB in all, under 1 MB a call
    assert len(sizes) == math.ceil(sum(sizes) / 1_000_000)  # and no more calls than needed
    dims = {label: long_value for label in labels[:29]} | {"series": str(count - 1)}
    assert _stat(moto_endpoint, "big_gauge", dims, "Maximum") == count - 1


def test_cli_once_publishes_the_gauges(
    exporter: tuple[CollectorRegistry, str],
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from slipway.cli import mirror as mirror_cli

    _creds(monkeypatch)
    registry, url = exporter
    run = uuid.uuid4().hex[:8]
    Gauge("cli_gauge", "g", ["run"], registry=registry).labels(run).set(42)
    allowlist = tmp_path / "allowlist.json"
    allowlist.write_text(json.dumps({"cli_gauge": [["run"]]}))
    app = typer.Typer()
    mirror_cli.register(app)
    app.command("noop")(lambda: None)  # two commands: typer keeps `mirror` as a sub-command
    argv = ["mirror", "--target", url, "--once", "--endpoint-url", moto_endpoint]
    argv += ["--region", "us-east-1", "--allowlist", str(allowlist), "--port", "0"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "mirroring 1 metrics" in result.output
    assert _stat(moto_endpoint, "cli_gauge", {"run": run}, "Maximum") == 42

    bad = CliRunner().invoke(
        app, ["mirror", "--target", "ftp://x/metrics", "--allowlist", str(allowlist)]
    )
    assert bad.exit_code == 1
    assert "is not an http(s) URL" in bad.output


FEDERATED_MACHINE_SERIES = """\
# TYPE slipway_pod_memory_limit_ratio untyped
slipway_pod_memory_limit_ratio{container="server",namespace="slipway",pod="slipway-server-7d9c6b5f4-x2kqp",prometheus="monitoring/kube-prometheus-stack-prometheus"} 0.62 1900000000000
slipway_pod_memory_limit_ratio{container="server",namespace="slipway",pod="slipway-server-7d9c6b5f4-r8mtn",prometheus="monitoring/kube-prometheus-stack-prometheus"} 0.91 1900000000000
# TYPE slipway_pod_restarts_15m untyped
slipway_pod_restarts_15m{container="server",namespace="slipway",pod="slipway-server-7d9c6b5f4-x2kqp",prometheus="monitoring/kube-prometheus-stack-prometheus"} 0 1900000000000
slipway_pod_restarts_15m{container="server",namespace="slipway",pod="slipway-server-7d9c6b5f4-r8mtn",prometheus="monitoring/kube-prometheus-stack-prometheus"} 2 1900000000000
# TYPE slipway_step_pod_info untyped
slipway_step_pod_info{namespace="kubeflow-user-example-com",pod="slipway-training-8xk2p-system-container-impl-1402753361",prometheus="monitoring/kube-prometheus-stack-prometheus",step="search"} 1 1900000000000
# TYPE slipway_step_peak_memory_ratio untyped
slipway_step_peak_memory_ratio{prometheus="monitoring/kube-prometheus-stack-prometheus",step="search"} 0.95 1900000000000
slipway_step_peak_memory_ratio{prometheus="monitoring/kube-prometheus-stack-prometheus",step="evaluate"} 0.25 1900000000000
"""


def test_recorded_machine_series_from_federate_reach_cloudwatch_with_low_cardinality(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What /federate returns for the machine KPIs' recorded series (untyped, with the
    Prometheus external label) is published as gauges: serving pods under {namespace,
    container} (the alarm's Maximum is the largest pod, no pod dimension), training pods under
    {step}; the join series no alarm reads is not published."""
    import http.server
    import threading

    _creds(monkeypatch)
    namespace = f"ns-{uuid.uuid4().hex[:8]}"  # the shared moto server: our own dimension values
    step = f"search-{uuid.uuid4().hex[:6]}"
    body = (
        FEDERATED_MACHINE_SERIES.replace('namespace="slipway"', f'namespace="{namespace}"')
        .replace('step="search"', f'step="{step}"')
        .encode()
    )

    class Federate(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Federate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = f"http://127.0.0.1:{server.server_address[1]}/federate"
        rules = DimensionRules.from_catalog(load_kpi_catalog(REPO / "monitoring" / "kpis.yaml"))
        mirror = _mirror(target, moto_endpoint, rules)
        assert mirror.tick() > 0
        assert mirror.publisher.pending == 0
    finally:
        server.shutdown()
        thread.join(5)

    serving = {"container": "server", "namespace": namespace}
    name = "slipway_pod_memory_limit_ratio"
    assert _stat(moto_endpoint, name, serving, "Maximum") == 0.91
    assert _stat(moto_endpoint, name, serving, "SampleCount") == 2  # both pods, one metric
    assert _stat(moto_endpoint, "slipway_pod_restarts_15m", serving, "Maximum") == 2
    with_pod = {**serving, "pod": "slipway-server-7d9c6b5f4-r8mtn"}
    assert _stat(moto_endpoint, name, with_pod, "Maximum") is None
    peak = "slipway_step_peak_memory_ratio"
    assert _stat(moto_endpoint, peak, {"step": step}, "Maximum") == 0.95
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_endpoint)
    listed = cw.list_metrics(Namespace="Slipway", MetricName="slipway_step_pod_info")
    assert listed["Metrics"] == []
