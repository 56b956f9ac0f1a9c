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
