"""The mirror's mapping rules, batching and buffer, without network (a fake CloudWatch client)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from slipway.errors import ConfigError
from slipway.monitoring.kpis import load_kpi_catalog
from slipway.monitoring.mirror import (
    Converter,
    DimensionRules,
    MirrorMetrics,
    Publisher,
    PublishLimits,
    datum_size,
    health,
)
from slipway.monitoring.mirror.health import loop_is_alive
from slipway.monitoring.mirror.scrape import parse_families
from tests.support import REPO

T0 = 1_900_000_000.0


def _by_key(datums: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {
        (d["MetricName"], tuple((x["Name"], x["Value"]) for x in d.get("Dimensions", []))): d
        for d in datums
    }


def _scrape(registry: CollectorRegistry):
    return parse_families(generate_latest(registry).decode())


# --- rules ----------------------------------------------------------------------------------


def test_rules_from_catalog_are_what_the_alarms_read() -> None:
    rules = DimensionRules.from_catalog(load_kpi_catalog(REPO / "monitoring" / "kpis.yaml"))
    assert rules.dimension_sets("slipway_http_requests_total") == (
        ("route",),
        ("route", "status_class"),
    )
    assert rules.dimension_sets("slipway_prediction_score_bucket") == (("le", "model"),)
    assert "slipway_http_request_duration_seconds" in rules
    assert "slipway_inflight_requests" not in rules


def test_rules_refuse_more_than_30_dimensions() -> None:
    with pytest.raises(ConfigError, match="31 labels; CloudWatch allows 30"):
        DimensionRules.from_mapping({"m": [[f"l{i}" for i in range(31)]]})
    with pytest.raises(ConfigError, match="invalid or repeated"):
        DimensionRules.from_mapping({"m": [["a-b"]]})
    assert (
        len(DimensionRules.from_mapping({"m": [[f"l{i}" for i in range(30)]]}).sets["m"][0]) == 30
    )


# --- conversion -----------------------------------------------------------------------------


def test_counter_baseline_increase_reset_and_new_series() -> None:
    rules = DimensionRules.from_mapping({"req_total": [["route"], ["route", "code"]]})
    conv = Converter(rules)
    text = 'req_total{route="/a",code="2xx"} %s\nreq_total{route="/a",code="5xx"} %s\n'
    typed = "# TYPE req_total counter\n"
    assert conv.convert("t", parse_families(typed + text % (10, 4)), T0) == []  # baseline
    out = _by_key(conv.convert("t", parse_families(typed + text % (15, 6)), T0 + 60))
    assert out[("req_total", (("route", "/a"),))]["Value"] == 7
    assert out[("req_total", (("code", "5xx"), ("route", "/a")))]["Value"] == 2
    assert out[("req_total", (("route", "/a"),))]["Timestamp"] == datetime.fromtimestamp(
        T0 + 60, UTC
    )
    # the 2xx counter went down: the process restarted, its increase is its new value
    out = _by_key(conv.convert("t", parse_families(typed + text % (3, 7)), T0 + 120))
    assert out[("req_total", (("code", "2xx"), ("route", "/a")))]["Value"] == 3
    assert out[("req_total", (("route", "/a"),))]["Value"] == 4
    # a series first seen after the baseline started in between: its increase is its value
    more = text % (3, 7) + 'req_total{route="/b",code="4xx"} 5\n'
    out = _by_key(conv.convert("t", parse_families(typed + more), T0 + 180))
    assert out[("req_total", (("route", "/b"),))]["Value"] == 5
    assert out[("req_total", (("route", "/a"),))]["Value"] == 0  # zero is data, not missing
    # targets keep separate baselines
    assert conv.convert("other", parse_families(typed + text % (100, 100)), T0) == []


def test_gauges_keep_every_series_value_for_max_min_average() -> None:
    registry = CollectorRegistry()
    psi = Gauge("slipway_feature_psi", "psi", ["model", "version", "feature"], registry=registry)
    psi.labels("slipway", "v1", "a").set(0.1)
    psi.labels("slipway", "v1", "b").set(0.3)
    psi.labels("slipway", "v1", "c").set(0.3)
    Gauge("not_allowlisted", "x", registry=registry).set(1)
    rules = DimensionRules.from_mapping({"slipway_feature_psi": [["model"]]})
    (datum,) = Converter(rules).convert("t", _scrape(registry), T0)
    assert datum["MetricName"] == "slipway_feature_psi"
    assert datum["Dimensions"] == [{"Name": "model", "Value": "slipway"}]
    assert (datum["Values"], datum["Counts"]) == ([0.1, 0.3], [1.0, 2.0])


def test_histogram_distribution_buckets_and_count() -> None:
    registry = CollectorRegistry()
    score = Histogram(
        "slipway_prediction_score",
        "p",
        ["model", "version"],
        buckets=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        registry=registry,
    )
    rules = DimensionRules.from_mapping(
        {
            "slipway_prediction_score": [["model"]],
            "slipway_prediction_score_bucket": [["le", "model"]],
            "slipway_prediction_score_count": [["model"]],
        }
    )
    conv = Converter(rules)
    score.labels("slipway", "v1").observe(0.5)
    assert conv.convert("t", _scrape(registry), T0) == []
    for value in (0.05, 0.05, 0.35, 0.95):
        score.labels("slipway", "v1").observe(value)
    score.labels("slipway", "v2").observe(0.95)
    out = _by_key(conv.convert("t", _scrape(registry), T0 + 60))
    dist = out[("slipway_prediction_score", (("model", "slipway"),))]
    assert dict(zip(dist["Values"], dist["Counts"], strict=True)) == {0.1: 2, 0.4: 1, 1.0: 2}
    assert out[("slipway_prediction_score_count", (("model", "slipway"),))]["Value"] == 5
    # cumulative buckets, as the mean-confidence alarm expects
    assert (
        out[("slipway_prediction_score_bucket", (("le", "0.1"), ("model", "slipway")))]["Value"]
        == 2
    )
    assert (
        out[("slipway_prediction_score_bucket", (("le", "0.4"), ("model", "slipway")))]["Value"]
        == 3
    )
    # nothing observed in an interval: no distribution (p95 of nothing is missing, not 0)
    out = _by_key(conv.convert("t", _scrape(registry), T0 + 120))
    assert ("slipway_prediction_score", (("model", "slipway"),)) not in out


def test_histogram_overflow_bucket_counts_at_the_last_finite_bound() -> None:
    registry = CollectorRegistry()
    latency = Histogram("lat_seconds", "l", buckets=[0.1, 1.0], registry=registry)
    conv = Converter(DimensionRules.from_mapping({"lat_seconds": [[]]}))
    conv.convert("t", _scrape(registry), T0)
    latency.observe(5.0)
    latency.observe(0.05)
    (datum,) = conv.convert("t", _scrape(registry), T0 + 60)
    assert "Dimensions" not in datum
    assert dict(zip(datum["Values"], datum["Counts"], strict=True)) == {0.1: 1, 1.0: 1}


def test_series_missing_a_dimension_label_is_left_out_of_that_set() -> None:
    rules = DimensionRules.from_mapping({"g": [["job"], ["job", "metric"]]})
    text = '# TYPE g gauge\ng{job="p"} 1\ng{job="p",metric="f1"} 2\ng{metric="x"} 3\n'
    out = _by_key(Converter(rules).convert("t", parse_families(text), T0))
    assert out[("g", (("job", "p"),))]["Values"] == [1.0, 2.0]
    assert out[("g", (("job", "p"), ("metric", "f1")))]["Value"] == 2.0
    assert len(out) == 2


def test_many_values_split_at_150_and_non_finite_values_are_skipped() -> None:
    lines = "".join(f'g{{i="{i}",k="a"}} {i}\n' for i in range(320)) + 'g{i="x",k="a"} NaN\n'
    datums = Converter(DimensionRules.from_mapping({"g": [["k"]]})).convert(
        "t", parse_families("# TYPE g gauge\n" + lines), T0
    )
    assert [len(d["Values"]) for d in datums] == [150, 150, 20]
    assert not any(math.isnan(v) for d in datums for v in d["Values"])


def test_untyped_federation_output_is_typed_by_name() -> None:
    text = (
        'req_total{instance="a"} 1\n'
        'lat_bucket{le="0.1"} 1\nlat_bucket{le="+Inf"} 2\nlat_count 2\nlat_sum 0.3\n'
        "temp 20\n"
    )
    kinds = {f.name: f.type for f in parse_families(text)}
    assert kinds == {"req": "counter", "lat": "histogram", "temp": "gauge"}


# --- publishing -----------------------------------------------------------------------------


class FakeCloudWatch:
    """Records calls; fails the calls whose index is in ``fail`` with the given exception."""

    def __init__(self, fail: dict[int, Exception] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[list[dict]] = []
        self.accepted: list[dict] = []

    def put_metric_data(self, Namespace: str, MetricData: list[dict]) -> None:
        self.calls.append(MetricData)
        error = self.fail.pop(len(self.calls), None)
        if error is not None:
            raise error
        if any(d["MetricName"] == "bad" for d in MetricData):
            raise _client_error(400, "InvalidParameterValue")
        self.accepted.extend(MetricData)


def _client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutMetricData",
    )


def _points(n: int, name: str = "g", start: float = T0) -> list[dict[str, Any]]:
    when = datetime.fromtimestamp(start, UTC)
    return [{"MetricName": name, "Timestamp": when, "Value": float(i)} for i in range(n)]


def _publisher(client: FakeCloudWatch, **kwargs: Any) -> tuple[Publisher, MirrorMetrics]:
    metrics = MirrorMetrics(CollectorRegistry())
    kwargs.setdefault("clock", lambda: T0 + 10)
    clock = kwargs.pop("clock", time.time)
    limits = PublishLimits(backoff_base=0.0, **kwargs)
    return Publisher(client, metrics, limits=limits, clock=clock), metrics


def _value(metrics: MirrorMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_batches_of_1000_in_order() -> None:
    client = FakeCloudWatch()
    publisher, metrics = _publisher(client)
    publisher.add(_points(2500))
    assert publisher.flush() == 2500
    assert [len(c) for c in client.calls] == [1000, 1000, 500]
    assert [d["Value"] for d in client.accepted] == [float(i) for i in range(2500)]
    assert _value(metrics, "slipway_mirror_put_calls_total", outcome="ok") == 3
    assert _value(metrics, "slipway_mirror_buffered_points") == 0


def test_batches_respect_the_byte_limit() -> None:
    client = FakeCloudWatch()
    publisher, _ = _publisher(client, max_batch_bytes=50_000)
    point = _points(1)[0]
    point["Dimensions"] = [{"Name": f"d{i}", "Value": "x" * 1000} for i in range(5)]
    publisher.add([dict(point, Value=float(i)) for i in range(40)])
    publisher.flush()
    for call in client.calls:
        body = urlencode(
            {"Action": "PutMetricData", "Version": "2010-08-01", "Namespace": "Slipway"}
            | {k: v for d_i, d in enumerate(call, 1) for k, v in _query(d, d_i)}
        )
        assert len(body) <= 50_000
    assert sum(len(c) for c in client.calls) == 40
    assert len(client.calls) == math.ceil(40 * datum_size(point) / 50_000)


def _query(datum: dict, index: int) -> list[tuple[str, str]]:
    from slipway.monitoring.mirror.publish import _flatten

    return list(_flatten(datum, f"MetricData.member.{index}"))


def test_a_failed_call_keeps_exactly_the_unsent_points() -> None:
    client = FakeCloudWatch(fail={2: EndpointConnectionError(endpoint_url="http://x")})
    publisher, metrics = _publisher(client)
    publisher.add(_points(2500))
    assert publisher.flush() == 1000
    assert publisher.pending == 1500
    assert _value(metrics, "slipway_mirror_lag_seconds") == 10
    assert _value(metrics, "slipway_mirror_put_calls_total", outcome="error") == 1
    assert publisher.flush() == 1500
    assert [d["Value"] for d in client.accepted] == [float(i) for i in range(2500)]


def test_throttling_is_retried_not_dropped() -> None:
    client = FakeCloudWatch(fail={1: _client_error(400, "Throttling"), 2: _client_error(503, "X")})
    publisher, metrics = _publisher(client)
    publisher.add(_points(10))
    assert publisher.flush() == 0
    assert publisher.flush() == 0
    assert publisher.flush() == 10
    assert len(client.accepted) == 10
    assert _value(metrics, "slipway_mirror_dropped_points_total", reason="rejected") == 0


def test_an_invalid_datum_is_isolated_and_dropped_alone() -> None:
    client = FakeCloudWatch()
    publisher, metrics = _publisher(client)
    points = _points(8)
    points[5]["MetricName"] = "bad"
    publisher.add(points)
    assert publisher.flush() == 8
    assert publisher.pending == 0
    assert sorted(d["Value"] for d in client.accepted) == [0, 1, 2, 3, 4, 6, 7]
    assert _value(metrics, "slipway_mirror_dropped_points_total", reason="rejected") == 1


def test_full_buffer_drops_the_oldest_and_counts_them() -> None:
    client = FakeCloudWatch()
    publisher, metrics = _publisher(client, max_buffered=1000)
    publisher.add(_points(1200))
    assert publisher.pending == 1000
    assert _value(metrics, "slipway_mirror_dropped_points_total", reason="buffer_full") == 200
    publisher.flush()
    assert [d["Value"] for d in client.accepted] == [float(i) for i in range(200, 1200)]


def test_points_older_than_two_weeks_are_dropped() -> None:
    client = FakeCloudWatch()
    publisher, metrics = _publisher(client, clock=lambda: T0 + 15 * 86400)
    publisher.add(_points(3))
    assert publisher.flush() == 0
    assert client.calls == []
    assert _value(metrics, "slipway_mirror_dropped_points_total", reason="too_old") == 3


def test_backoff_skips_flushes_until_due() -> None:
    now = [T0]
    client = FakeCloudWatch(fail={1: EndpointConnectionError(endpoint_url="http://x")})
    metrics = MirrorMetrics(CollectorRegistry())
    publisher = Publisher(
        client, metrics, limits=PublishLimits(backoff_base=10.0), clock=lambda: now[0]
    )
    publisher.add(_points(1))
    publisher.flush()
    now[0] += 4  # backoff is 5-10 s after the first failure
    assert publisher.flush() == 0
    assert len(client.calls) == 1
    now[0] += 7
    assert publisher.flush() == 1
    assert _value(metrics, "slipway_mirror_last_success_timestamp_seconds") == now[0]


def test_health_fails_when_the_loop_never_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [T0]
    monkeypatch.setattr(health, "time", SimpleNamespace(time=lambda: now[0]))
    metrics = MirrorMetrics(CollectorRegistry())
    alive = loop_is_alive(metrics, max_silence=60.0)
    assert metrics.last_tick_time == T0
    assert alive() is True  # just started: the first tick has 60 s
    now[0] += 59
    assert alive() is True
    now[0] += 2  # 61 s without a single tick: hung before its first tick
    assert alive() is False
    metrics.last_tick_time = now[0]  # what Mirror.tick records
    assert alive() is True


def test_health_counts_from_the_given_start_time() -> None:
    import time

    metrics = MirrorMetrics(CollectorRegistry(), started_at=time.time() - 120)
    assert loop_is_alive(metrics, max_silence=60.0)() is False
    assert loop_is_alive(metrics, max_silence=300.0)() is True


def test_datum_size_bounds_the_real_request_body() -> None:
    point = _points(1)[0] | {
        "Dimensions": [{"Name": "route", "Value": "/v2/models/{name}/infer"}],
        "Values": [0.1, 0.25],
        "Counts": [3.0, 1.0],
    }
    real = len(urlencode(dict(_query(point, 1)))) + 1
    assert real <= datum_size(point) <= real + 60


def test_counter_type_names_get_total_in_cloudwatch() -> None:
    registry = CollectorRegistry()
    counter = Counter("slipway_model_load_failures", "f", ["model", "reason"], registry=registry)
    counter.labels("slipway", "checksum")
    conv = Converter(
        DimensionRules.from_mapping({"slipway_model_load_failures_total": [["model"]]})
    )
    conv.convert("t", _scrape(registry), T0)
    counter.labels("slipway", "checksum").inc()
    (datum,) = conv.convert("t", _scrape(registry), T0 + 60)
    assert (datum["MetricName"], datum["Value"]) == ("slipway_model_load_failures_total", 1.0)
