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
