"""The server metrics' shortcuts give the samples prometheus-client's own calls give."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from slipway.serving.metrics import SCORE_BUCKETS, ServerMetrics, observe_many


def _samples(registry: CollectorRegistry) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_matches_observe_one_by_one_including_values_on_bounds() -> None:
    values = np.concatenate(
        [np.random.default_rng(3).uniform(0, 1, 500), np.array(SCORE_BUCKETS), [0.0, 7.0]]
    )
    one, many = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("s", "s", ["m"], buckets=SCORE_BUCKETS, registry=one).labels("x")
    by_many = Histogram("s", "s", ["m"], buckets=SCORE_BUCKETS, registry=many).labels("x")
    for v in values.tolist():
        by_one.observe(v)
    observe_many(by_many, values)
    expected, got = _samples(one), _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got[("s_count", (("m", "x"),))] == len(values)


@pytest.mark.parametrize("rows", [1, 2, 1024])
def test_observe_predictions_counts_classes_and_scores(rows: int) -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "slipway", "v1")
    labels = np.arange(rows, dtype=np.int64) % 2
    proba = np.linspace(0.05, 0.95, rows)
    metrics.observe_predictions(labels, proba)
    samples = _samples(registry)
    base = (("model", "slipway"), ("version", "v1"))
    predicted = {c: samples[("slipway_predictions_total", (("class", c), *base))] for c in "01"}
    assert predicted == {"0": rows - rows // 2, "1": rows // 2}
    assert samples[("slipway_prediction_score_count", base)] == rows
    assert samples[("slipway_prediction_score_sum", base)] == pytest.approx(proba.sum())


def test_publish_psi_sets_each_feature() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "slipway", "v1")
    metrics.publish_psi({"a": 0.5, "b": 0.1})
    metrics.publish_psi({"a": 0.25})
    samples = _samples(registry)
    psi = {
        f: samples[
            ("slipway_feature_psi", (("feature", f), ("model", "slipway"), ("version", "v1")))
        ]
        for f in "ab"
    }
    assert psi == {"a": 0.25, "b": 0.1}


def test_tallies_reach_the_metrics_on_collection_and_by_the_timer(monkeypatch) -> None:
    """Collection flushes first; the loop timer (the lifespan starts it) flushes for workers nobody
    scrapes."""
    import asyncio

    from slipway.serving import metrics as metrics_module

    monkeypatch.setattr(metrics_module, "FLUSH_SECONDS", 0.05)
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "slipway", "v1")
    labels = {"route": "/r", "method": "POST", "status_class": "2xx"}
    child = metrics.requests.labels(*labels.values())

    async def scenario() -> list[float]:
        metrics.start_flushing()
        metrics.inflight_now = 2
        metrics.request_done("/r", "POST", 200, 0.003)
        seen = [child._value.get()]  # tallied, not yet added
        await asyncio.sleep(0.2)
        seen.append(child._value.get())  # the timer flushed
        metrics.stop_flushing()
        return seen

    assert asyncio.run(scenario()) == [0.0, 1.0]
    assert registry.get_sample_value("slipway_inflight_requests") == 2
    metrics.request_done("/r", "POST", 503, 0.2)  # outside a loop: no timer
    assert (
        registry.get_sample_value("slipway_http_requests_total", {**labels, "status_class": "5xx"})
        == 1
    )
    bucket = {"route": "/r", "method": "POST", "le": "0.005"}
    assert registry.get_sample_value("slipway_http_request_duration_seconds_bucket", bucket) == 1
    assert registry.get_sample_value(
        "slipway_http_request_duration_seconds_sum", {"route": "/r", "method": "POST"}
    ) == pytest.approx(0.203)


def test_a_multiclass_model_counts_each_class_and_scores_the_predicted_one() -> None:
    from slipway.serving.contract import Contract, FeatureInput
    from slipway.serving.metrics import ServerMetrics

    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "m", "v")
    contract = Contract(
        "multiclass", (FeatureInput("x", "numeric"),), ("a", "b", "c"), None, "BYTES"
    )
    metrics.task_loaded(contract, {})
    labels = np.array(["a", "c", "c"], dtype=object)
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    metrics.observe_outputs(contract, {"label": labels, "probability": proba})
    count = {
        c: registry.get_sample_value(
            "slipway_predictions_total", {"model": "m", "version": "v", "class": c}
        )
        for c in "abc"
    }
    assert count == {"a": 1.0, "b": 0.0, "c": 2.0}
    labels_mv = {"model": "m", "version": "v"}
    assert registry.get_sample_value("slipway_prediction_score_sum", labels_mv) == pytest.approx(
        1.9
    )


def test_a_binary_model_with_text_classes_counts_the_positive_class_as_1() -> None:
    from slipway.serving.contract import Contract, FeatureInput
    from slipway.serving.metrics import ServerMetrics

    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "m", "v")
    contract = Contract(
        "binary", (FeatureInput("c", "categorical"),), ("no", "yes"), "yes", "BYTES"
    )
    metrics.task_loaded(contract, {})
    labels = np.array(["yes", "no", "yes"], dtype=object)
    metrics.observe_outputs(contract, {"label": labels, "probability": np.array([0.9, 0.2, 0.6])})
    metrics.flush()
    labels_mv = {"model": "m", "version": "v"}
    assert registry.get_sample_value("slipway_predictions_total", {**labels_mv, "class": "1"}) == 2
    assert registry.get_sample_value("slipway_predictions_total", {**labels_mv, "class": "0"}) == 1
    assert (
        registry.get_sample_value("slipway_unknown_category_total", {**labels_mv, "feature": "c"})
        == 0
    )


def test_a_regression_model_histograms_values_on_the_training_quantiles() -> None:
    from slipway.serving.contract import Contract, FeatureInput
    from slipway.serving.metrics import ServerMetrics

    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "m", "v")
    contract = Contract("regression", (FeatureInput("x", "numeric"),))
    target = {"min": 0.0, "max": 100.0, "quantiles": {"0.05": 5.0, "0.5": 50.0, "0.95": 95.0}}
    metrics.task_loaded(contract, target)
    metrics.observe_outputs(contract, {"value": np.array([1.0, 40.0, 60.0, 200.0])})
    labels_mv = {"model": "m", "version": "v"}
    bucket = {
        le: registry.get_sample_value("slipway_prediction_value_bucket", {**labels_mv, "le": le})
        for le in ("0.0", "5.0", "50.0", "95.0", "100.0", "+Inf")
    }
    assert bucket == {"0.0": 0, "5.0": 1, "50.0": 2, "95.0": 3, "100.0": 3, "+Inf": 4}
