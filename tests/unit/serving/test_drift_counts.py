"""The window's bin counts, kept up to date as rows come and go, give the PSI of the rows held."""

from __future__ import annotations

import numpy as np
import pytest

from slipway.serving.drift import DriftWindow, population_stability_index

STATS = {
    "one_edge": {"edges": [0.0], "fractions": [0.3, 0.7]},
    "three_edges": {"edges": [-1.0, 0.0, 2.0], "fractions": [0.1, 0.2, 0.3, 0.4]},
}


@pytest.mark.parametrize("seed", range(5))
def test_psi_after_many_batches_equals_the_psi_of_the_rows_held(seed: int) -> None:
    rng = np.random.default_rng(seed)
    window = DriftWindow(list(STATS), STATS, window=37, every=1, min_rows=1)
    for _ in range(60):
        size = int(rng.choice([1, 1, 2, 5, 36, 37, 40]))
        window.add(rng.normal(rng.uniform(-1, 1), 1.5, size=(size, 2)).round(1))
        if rng.uniform() < 0.3:  # PSI now and then: the counts fold in between
            psi = window.compute()
            held = window.rows[: window.size]
            for i, (name, s) in enumerate(STATS.items()):
                expected = population_stability_index(held[:, i], s["edges"], s["fractions"])
                assert psi[name] == pytest.approx(expected, rel=1e-12), name
    assert window.size == 37
