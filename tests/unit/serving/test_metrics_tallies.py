"""A batch's predictions are tallied, then flushed: the same samples as observing one by one."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from slipway.serving.metrics import SCORE_BUCKETS, ServerMetrics


def _samples(registry: CollectorRegistry) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name.startswith(("slipway_prediction_score", "slipway_predictions"))
        and not s.name.endswith("_created")
    }


def test_a_batch_gives_the_samples_of_its_rows_one_by_one_including_values_on_bounds() -> None:
    proba = np.concatenate(
        [np.random.default_rng(5).uniform(0, 1, 300), np.array(SCORE_BUCKETS), [0.0]]
    )
    labels = (proba > 0.5).astype(np.int64)
    one, batch = CollectorRegistry(), CollectorRegistry()
    by_one = ServerMetrics(one, "slipway", "v1")
    for label, score in zip(labels, proba, strict=True):
        by_one.observe_predictions(np.array([label]), np.array([score]))
    by_batch = ServerMetrics(batch, "slipway", "v1")
    by_batch.observe_predictions(labels[:100], proba[:100])
    by_batch.observe_predictions(labels[100:], proba[100:])
    expected, got = _samples(one), _samples(batch)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    bucket = (("le", "0.5"), ("model", "slipway"), ("version", "v1"))
    assert got[("slipway_prediction_score_bucket", bucket)] == np.count_nonzero(proba <= 0.5)


def _all_samples(registry: CollectorRegistry) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_the_short_ways_lists_give_the_samples_of_request_done_and_observe_predictions() -> None:
    """``answered`` and ``served``, binned by flush, equal the per-request calls they replace."""
    from slipway.serving.metrics import INFER_ROUTE, LATENCY_BUCKETS

    rng = np.random.default_rng(11)
    seconds = [*rng.uniform(0, 0.02, 200).tolist(), *LATENCY_BUCKETS, 7.0]
    statuses = [200, 200, 400, 429, 499, 503, 200, 408][: len(seconds)] * (len(seconds) // 8 + 1)
    proba = rng.uniform(0, 1, 150)
    one, lists = CollectorRegistry(), CollectorRegistry()
    by_call, by_list = ServerMetrics(one, "slipway", "v1"), ServerMetrics(lists, "slipway", "v1")
    for status, s in zip(statuses, seconds, strict=False):
        by_call.request_done(INFER_ROUTE, "POST", status, s)
        by_list.answered[0].append(status)
        by_list.answered[1].append(s)
    for p in proba:
        label, score = np.array([int(p > 0.5)]), np.array([p])
        by_call.observe_predictions(label, score)
        for served, value in zip(
            by_list.served, (np.zeros((1, 3)), label.item(), score.item()), strict=True
        ):
            served.append(value)
    expected, got = _all_samples(one), _all_samples(lists)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert by_list.answered == ([], [])
    assert [len(held) for held in by_list.served] == [0, 0, 0]


_ONE_PREDICTION = (np.ones((1, 1)), 1, 0.9)


def test_flush_feeds_the_served_rows_to_the_drift_window_and_publishes_psi_when_due() -> None:
    from slipway.serving.drift import DriftWindow

    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "slipway", "v1")
    window = DriftWindow(["a"], {"a": {"edges": [0.0], "fractions": [0.5, 0.5]}}, every=4)
    window.min_rows = 1
    metrics.model_loaded(0.5, ["a"], window)
    psi = {"feature": "a", "model": "slipway", "version": "v1"}

    def serve() -> None:
        for served, value in zip(metrics.served, _ONE_PREDICTION, strict=True):
            served.append(value)

    for _ in range(3):
        serve()
    assert registry.get_sample_value("slipway_feature_psi", psi) == 0  # 3 requests: not due
    assert window.requests == 3
    assert window.size == 3
    serve()
    assert registry.get_sample_value("slipway_feature_psi", psi) > 1.0  # the 4th: due
    assert window.compute()["a"] > 1.0


def test_joined_reads_the_arrays_bytes_and_concatenates_what_is_not_as_the_server_makes() -> None:
    from slipway.serving.metrics import _joined

    scores = [np.array([0.25]), np.array([0.5]), np.array([1.0])]
    assert _joined(scores, np.float64).tolist() == [0.25, 0.5, 1.0]
    rows = [np.arange(3.0).reshape(1, 3), np.arange(3.0, 6.0).reshape(1, 3)]
    assert _joined(rows, np.float64, 3).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    odd = [np.array([1], dtype=np.int32), np.array([0], dtype=np.int64), np.arange(4)[::4]]
    assert _joined(odd, np.int64).tolist() == [1, 0, 0]  # an int32 and a strided view
