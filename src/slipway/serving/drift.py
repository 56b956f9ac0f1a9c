"""Population stability index (PSI) of recent inputs against the training distribution.

Each worker keeps the last ``window`` rows it served in a ring buffer (the requests' arrays are
kept by reference and copied into it in one go, when PSI is computed or a window's worth is
pending) and recomputes PSI every ``every`` requests but at most once per ``min_seconds``,
outside the requests: a plain model's one-row requests reach the window when the server's
metrics flush (at least once a second, and before every scrape), batches and the typed-column
way after their request (the app schedules the update with ``loop.call_soon``). The time
bound matters only under load: at 100 requests a second or fewer, ``every=100`` already spaces
updates a second apart; at 10,000 a second it would recompute PSI 100 times a second for a gauge
Prometheus reads every 15 s (~11,000 instructions a request, ``bench.instructions``). The bins
are the training deciles recorded in the package manifest (``training_stats[feature].edges`` and
``.fractions``).

The window keeps bin counts: :meth:`DriftWindow.compute` bins only the rows written since the
last update (every feature at once: edges padded to one matrix, one ``bincount``), uncounts the
rows they replaced, and evaluates the formula. One-row requests at ``every=100`` bin 100 rows
per update (tens of µs) instead of the whole window (30 features x 1,000 rows: ~0.3 ms, ~3 µs a
request); a batch that replaces the whole window costs that full binning, once per update.

PSI = sum over bins of (a - e) * ln(a / e), with a and e the served and training shares of a bin,
both floored at :data:`EPSILON` so that an empty bin gives a large but finite value.

Every kind bins as a number (:meth:`DriftWindow.encode` turns a request's columns into the
window's float rows):

- numeric, integer: the training deciles; boolean: ``edges`` ``[0.5]`` (false, true);
- categorical: the value's index among the training ``categories``, ``len(categories)`` for any
  other value, so the bins are the categories then *other*, with the training ``fractions`` and
  ``other``;
- a feature that may be missing (nullable, or missing in training) has one more bin, *missing*:
  a missing value (NaN, or ``""`` for a categorical) is held as +inf, past an extra +inf edge.
  Its expected share is the training ``missing``, and the other bins' shares are scaled by
  ``1 - missing`` (training ``fractions`` are over the present values).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

EPSILON = 1e-4


def population_stability_index(
    values: np.ndarray, edges: Sequence[float], fractions: Sequence[float]
) -> float:
    """PSI of ``values`` binned by ``edges`` against the expected ``fractions`` of those bins."""
    expected = np.maximum(np.asarray(fractions, dtype=float), EPSILON)
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), values, side="right"),
        minlength=len(expected),
    )
    actual = np.maximum(counts / max(len(values), 1), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


class DriftWindow:
    """The last ``window`` input rows and the PSI of each feature over them."""

    def __init__(  # noqa: PLR0913 - the window's bins, size and schedule, named at call sites
        self,
        features: Sequence[str],
        training_stats: dict[str, dict[str, Any]],
        window: int = 1000,
        every: int = 100,
        min_rows: int = 100,
        nullable: frozenset[str] | set[str] = frozenset(),
        min_seconds: float = 0.0,
    ) -> None:
        self.features = list(features)
        # KeyError / TypeError / ValueError here, at load, rather than later in a PSI update
        self.stats = [_bins(name, training_stats[name], name in nullable) for name in self.features]
        # categorical features: value -> code (index in the training categories); after the
        # bins, so a training_stats entry that is not a mapping is a TypeError from _bins
        self._codes = {
            name: {c: float(i) for i, c in enumerate(training_stats[name]["categories"])}
            for name in self.features
            if training_stats[name].get("kind") == "categorical"
        }
        # every feature's bins in one matrix: edges padded with NaN (no value is >= NaN, not
        # even +inf, a missing value), so a value's bin is the number of its feature's edges
        # <= it, as searchsorted(side="right"); bins past a feature's own are masked out
        width = max((len(edges) for edges, _ in self.stats), default=0)
        self._edges = np.full((len(self.stats), width), np.nan)
        self._expected = np.ones((len(self.stats), width + 1))
        self._own = np.zeros((len(self.stats), width + 1), dtype=bool)
        for i, (edges, fractions) in enumerate(self.stats):
            self._edges[i, : len(edges)] = edges
            self._expected[i, : len(fractions)] = np.maximum(fractions, EPSILON)
            self._own[i, : len(fractions)] = True
        self._offsets = np.arange(len(self.stats)) * (width + 1)
        self._ring = np.zeros((window, len(self.features)), dtype=np.float64)
        self._window = window
        self.window = window  # rows kept: a caller may hand over only the last this many
        # each counted row's bins (as flat indices into the counts) and the counts over them;
        # rows written since the last count are "dirty": compute() uncounts what they
        # replaced and counts them, so it bins only the rows that came since, once
        self._ring_bins = np.zeros((window, len(self.features)), dtype=np.intp)
        self._counted = np.zeros(window, dtype=bool)
        self._dirty = np.zeros(window, dtype=bool)
        self._counts = np.zeros(self._expected.size, dtype=np.int64)
        self._held = 0  # rows in the ring (size counts the pending ones too)
        self._pending: list[np.ndarray] = []  # batches added since the last fold, in order
        self._pending_rows = 0
        self.size = 0  # rows held (<= window)
        self.next = 0  # where the next row goes
        self.every = every
        self.min_rows = min_rows
        self.min_seconds = min_seconds
        self._last_due = -math.inf  # time.monotonic() of the last update add() asked for
        self.requests = 0

    def encode(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """A request's typed columns as the window's float64 rows (the module docstring)."""
        out = np.empty((len(next(iter(columns.values()))), len(self.features)))
        for i, name in enumerate(self.features):
            codes = self._codes.get(name)
            if codes is None:
                values = columns[name]
                out[:, i] = np.where(np.isnan(values), np.inf, values)
            else:
                other = float(len(codes))
                out[:, i] = [
                    np.inf if v == "" else codes.get(v, other) for v in columns[name].tolist()
                ]
        return out

    @property
    def rows(self) -> np.ndarray:
        """The ring buffer of the last rows (``[:size]`` holds rows until it has wrapped)."""
        self._fold()
        return self._ring

    def add(self, batch: np.ndarray, requests: int = 1) -> bool:
        """Keep ``batch``'s rows, the rows of ``requests`` requests; True when PSI is due.

        Due: the count of requests passed a multiple of ``every`` and ``min_rows`` rows are
        held, unless the last time was less than ``min_seconds`` ago (the clock is read then
        only). The server's metrics add a flush's worth of one-row requests as one batch
        (:meth:`slipway.serving.metrics.ServerMetrics.flush`), the typed-column way one
        request at a time.

        The batch is only referenced here (the request path allocates it and never changes
        it); it is copied into the ring with the others when PSI is computed or once a window's
        worth of rows is pending: one numpy copy per ~``every`` one-row requests, and no
        request body (a binary batch is a view of it) kept alive past the window.
        """
        self._pending.append(batch)
        n, window = len(batch), self._window
        self._pending_rows += n
        if self.size < window:
            self.size = min(window, self.size + n)
        before = self.requests
        self.requests += requests
        if self._pending_rows >= window:
            self._fold()
        if self.requests // self.every == before // self.every or self.size < self.min_rows:
            return False
        now = time.monotonic()
        if now - self._last_due < self.min_seconds:
            return False
        self._last_due = now
        return True

    def _fold(self) -> None:
        """Copy the pending batches into the ring (their last ``window`` rows), marked dirty."""
        if not self._pending:
            return
        pending = self._pending
        self._pending, self._pending_rows = [], 0
        window = len(self._ring)
        batch = pending[0] if len(pending) == 1 else np.concatenate(pending)
        batch = batch[-window:]
        n = len(batch)
        end = self.next + n
        if end <= window:
            self._ring[self.next : end] = batch
            self._dirty[self.next : end] = True
        else:
            first = window - self.next
            self._ring[self.next :] = batch[:first]
            self._ring[: n - first] = batch[first:]
            self._dirty[self.next :] = True
            self._dirty[: n - first] = True
        self._held = min(window, self._held + n)
        self.next = end % window

    def _count(self) -> None:
        """Bring the bin counts up to date with the ring: uncount replaced rows, count new ones."""
        self._fold()
        slots = np.flatnonzero(self._dirty)
        if not len(slots):
            return
        self._dirty[slots] = False
        replaced = slots[self._counted[slots]]
        if len(replaced):
            self._counts -= np.bincount(
                self._ring_bins[replaced].ravel(), minlength=self._counts.size
            )
        rows = self._ring[slots]
        bins = np.zeros(rows.shape, dtype=np.intp)  # [rows, features]: edges <= each value
        for column in self._edges.T:  # one comparison per decile, every feature at once
            bins += rows >= column
        bins += self._offsets
        self._counts += np.bincount(bins.ravel(), minlength=self._counts.size)
        self._ring_bins[slots] = bins
        self._counted[slots] = True

    def compute(self) -> dict[str, float]:
        """PSI per feature over the rows held now (as :func:`population_stability_index`)."""
        self._count()
        counts = self._counts.reshape(self._expected.shape)
        actual = np.maximum(counts / max(self._held, 1), EPSILON)
        terms = (actual - self._expected) * np.log(actual / self._expected)
        psi = np.where(self._own, terms, 0.0).sum(axis=1)
        return dict(zip(self.features, psi.tolist(), strict=True))


def _bins(
    feature: str, stats: dict[str, Any], nullable: bool = False
) -> tuple[list[float], list[float]]:
    """``(edges, fractions)`` of one feature's training bins: n edges make n + 1 bins."""
    if not isinstance(stats, dict):
        raise TypeError(f"training_stats of {feature!r} is a {type(stats).__name__}, not a mapping")
    if stats.get("kind") == "categorical":
        categories, present = list(stats["categories"]), list(stats["fractions"])
        if len(present) != len(categories):
            raise ValueError(
                f"training_stats of {feature!r} has {len(categories)} categories and "
                f"{len(present)} fractions; expected one fraction per category"
            )
        # codes 0 .. k-1 for the categories, k for any other value: k + 1 bins
        edges = [i + 0.5 for i in range(len(categories))]
        fractions = [*present, float(stats.get("other", 0.0))]
    else:
        edges, fractions = list(stats["edges"]), list(stats["fractions"])
    if len(fractions) != len(edges) + 1:
        raise ValueError(
            f"training_stats of {feature!r} has {len(edges)} edges and {len(fractions)} "
            f"fractions; expected {len(edges) + 1} fractions (one per bin)"
        )
    missing = float(stats.get("missing") or 0.0)
    if nullable or missing > 0:  # a missing value (+inf) lands past one more edge
        return [*edges, np.inf], [*(f * (1.0 - missing) for f in fractions), missing]
    return edges, fractions
