"""PSI of served inputs against the training deciles, over a sliding window."""

from __future__ import annotations

import numpy as np
import pytest

from slipway.packaging.package import training_statistics
from slipway.serving.drift import DriftWindow, population_stability_index
from tests.support.serving import features


def test_psi_is_near_zero_on_the_training_distribution_and_large_when_shifted() -> None:
    x = features()
    stats = training_statistics(x)["mean_radius"]
    same = population_stability_index(x["mean_radius"].to_numpy(), **_bins(stats))
    shifted = population_stability_index(x["mean_radius"].to_numpy() * 1.5, **_bins(stats))
    assert same < 0.01
    assert shifted > 1.0


def test_psi_by_hand() -> None:
    # one edge at 0: training 50/50; served 90/10
    value = population_stability_index(np.array([-1.0] * 9 + [1.0]), [0.0], [0.5, 0.5])
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert value == pytest.approx(expected)


def test_window_keeps_the_last_rows_and_signals_every_k_requests() -> None:
    stats = {"a": {"edges": [0.0], "fractions": [0.5, 0.5]}}
    window = DriftWindow(["a"], stats, window=4, every=2, min_rows=3)
    assert window.add(np.array([[1.0], [2.0]])) is False  # request 1
    assert window.add(np.array([[3.0]])) is True  # request 2, 3 rows held
    window.add(np.array([[4.0], [5.0], [6.0]]))  # wraps around
    assert sorted(window.rows[: window.size, 0].tolist()) == [3.0, 4.0, 5.0, 6.0]
    window.add(np.arange(10.0).reshape(-1, 1))  # bigger than the window: its last 4 rows
    assert sorted(window.rows[:, 0].tolist()) == [6.0, 7.0, 8.0, 9.0]
    assert window.compute()["a"] > 1.0  # all positive vs 50/50


def test_window_signals_at_most_once_per_min_seconds(monkeypatch) -> None:
    """Under load, every k requests is bounded by time: the clock decides between signals."""
    clock = [100.0]
    monkeypatch.setattr("slipway.serving.drift.time.monotonic", lambda: clock[0])
    stats = {"a": {"edges": [0.0], "fractions": [0.5, 0.5]}}
    window = DriftWindow(["a"], stats, window=10, every=2, min_rows=1, min_seconds=1.0)
    row = np.array([[1.0]])
    signals = [window.add(row) for _ in range(6)]  # 6 requests within one instant
    assert signals == [False, True, False, False, False, False]  # the first update only
    clock[0] += 0.99
    assert [window.add(row) for _ in range(2)] == [False, False]  # 8th request: 0.99 s later
    clock[0] += 0.01
    assert [window.add(row) for _ in range(2)] == [False, True]  # 10th: a second has passed
    assert window.compute()["a"] > 1.0  # every row was kept, signalled or not
    assert window.size == 10


def test_a_batch_of_several_requests_signals_when_it_passes_a_multiple_of_k() -> None:
    """The metrics' flush adds many one-row requests at once: due as if added one by one."""
    stats = {"a": {"edges": [0.0], "fractions": [0.5, 0.5]}}
    window = DriftWindow(["a"], stats, window=100, every=5, min_rows=1)
    rows = np.ones((3, 1))
    assert window.add(rows, requests=3) is False  # requests 1-3
    assert window.add(rows, requests=3) is True  # 4-6: passed 5
    assert window.add(rows[:1], requests=1) is False  # 7
    assert window.add(rows, requests=3) is True  # 8-10: reached 10
    assert window.add(np.ones((12, 1)), requests=12) is True  # 11-22: passed 15 and 20, once
    assert window.requests == 22
    assert window.size == 22


@pytest.mark.parametrize(
    ("stats", "error"),
    [
        ({}, KeyError),  # no entry for the feature
        ({"a": {"edges": [0.0]}}, KeyError),  # no fractions
        ({"a": [0.0, 0.5]}, TypeError),  # not a mapping
        ({"a": {"edges": [0.0, 1.0], "fractions": [0.5, 0.5]}}, ValueError),  # 3 bins, 2 shares
    ],
)
def test_window_refuses_unusable_training_stats_when_built(stats: dict, error: type) -> None:
    """Refused when built (the server builds it at load), not later in a PSI update."""
    with pytest.raises(error):
        DriftWindow(["a"], stats)


def _bins(stats: dict) -> dict:
    return {"edges": stats["edges"], "fractions": stats["fractions"]}


def test_window_psi_equals_the_per_feature_psi_when_features_have_different_bins() -> None:
    """compute() bins every feature at once (edges padded): same values as one by one."""
    stats = {
        "one_edge": {"edges": [0.0], "fractions": [0.3, 0.7]},
        "three_edges": {"edges": [-1.0, 0.0, 2.0], "fractions": [0.1, 0.2, 0.3, 0.4]},
        "no_edge": {"edges": [], "fractions": [1.0]},
    }
    window = DriftWindow(list(stats), stats, window=50)
    rows = np.random.default_rng(7).normal(0.5, 1.5, size=(50, 3))
    rows[0] = [0.0, 2.0, 5.0]  # values on edges: searchsorted "right" puts them above
    window.add(rows)
    psi = window.compute()
    for i, (name, s) in enumerate(stats.items()):
        assert psi[name] == pytest.approx(
            population_stability_index(rows[:, i], s["edges"], s["fractions"]), rel=1e-12
        )
    assert psi["three_edges"] > 0.0
    assert psi["no_edge"] == pytest.approx(0.0)


def _psi(expected: list[float], actual: list[float]) -> float:
    e = np.maximum(np.asarray(expected), 1e-4)
    a = np.maximum(np.asarray(actual), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


CATEGORICAL = {
    "kind": "categorical",
    "categories": ["a", "b"],
    "fractions": [0.75, 0.25],
    "other": 0.0,
    "missing": 0.2,
}


def test_categorical_psi_compares_category_other_and_missing_shares() -> None:
    window = DriftWindow(["c"], {"c": CATEGORICAL}, window=10, every=1, min_rows=1)
    served = np.array(["a"] * 4 + ["b"] * 2 + ["zzz"] * 2 + [""] * 2, dtype=object)
    rows = window.encode({"c": served})
    assert rows[:, 0].tolist() == [0.0] * 4 + [1.0] * 2 + [2.0] * 2 + [np.inf] * 2
    window.add(rows)
    # training: a 0.75 and b 0.25 of the 80 % present; 20 % missing; no other
    expected = [0.75 * 0.8, 0.25 * 0.8, 0.0, 0.2]
    assert window.compute()["c"] == pytest.approx(_psi(expected, [0.4, 0.2, 0.2, 0.2]))


def test_the_training_mix_of_categories_has_no_drift() -> None:
    window = DriftWindow(["c"], {"c": CATEGORICAL}, window=20, every=1, min_rows=1)
    served = np.array(["a"] * 12 + ["b"] * 4 + [""] * 4, dtype=object)
    window.add(window.encode({"c": served}))
    assert window.compute()["c"] == pytest.approx(0.0, abs=1e-12)


def test_a_nullable_number_counts_nan_as_missing_and_booleans_bin_as_false_true() -> None:
    stats = {
        "x": {"kind": "numeric", "edges": [0.0], "fractions": [0.5, 0.5], "missing": 0.1},
        "b": {"kind": "boolean", "edges": [0.5], "fractions": [0.5, 0.5], "missing": 0.0},
    }
    window = DriftWindow(["x", "b"], stats, window=20, every=1, min_rows=1, nullable={"b"})
    x = np.array([-1.0] * 9 + [1.0] * 9 + [np.nan] * 2)
    b = np.array([1.0] * 16 + [0.0] * 2 + [np.nan] * 2)
    window.add(window.encode({"x": x, "b": b}))
    psi = window.compute()
    assert psi["x"] == pytest.approx(0.0, abs=1e-12)  # 45/45/10 as in training
    assert psi["b"] == pytest.approx(_psi([0.5, 0.5, 0.0], [0.1, 0.8, 0.1]))


def test_a_plain_numeric_window_has_no_missing_bin() -> None:
    stats = {"a": {"edges": [0.0], "fractions": [0.5, 0.5], "missing": 0.0}}
    window = DriftWindow(["a"], stats)
    assert window.stats == [([0.0], [0.5, 0.5])]
