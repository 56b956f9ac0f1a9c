"""Turn scraped families into CloudWatch ``MetricDatum`` dicts (the mapping rules).

- **gauge**: the value at scrape time; several series under one dimension set go out as one
  datum with ``Values``/``Counts``, so ``Maximum``/``Minimum``/``Average`` stay exact.
- **counter** (and a histogram's ``_bucket``/``_count``/``_sum``): the *increase* since the
  previous scrape of the same target, summed over the series of a dimension set, so per-period
  ``Sum`` adds up. The first scrape of a target is the baseline (nothing published). A series
  seen for the first time later started in between: its increase is its value. A counter that
  went down (or whose ``_created`` changed) was reset by a restart: its increase is its value.
- **histogram** ``<name>`` (when ``<name>`` itself is allowlisted): a value distribution,
  ``Values`` = bucket upper bounds, ``Counts`` = per-bucket increase, so CloudWatch computes
  ``p95`` over it. Observations above the last finite bound are counted at that bound.

Only allowlisted metric names are published, once per allowlisted dimension set; a series that
lacks a label of a set is left out of that set.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from slipway.monitoring.mirror.rules import DimensionRules
from slipway.monitoring.mirror.scrape import Family, Labels, Sample

#: CloudWatch accepts at most 150 distinct values in one datum's ``Values``.
MAX_VALUES_PER_DATUM = 150
#: CloudWatch rejects values outside this magnitude (except 0).
_MAX_MAGNITUDE = 1.174271e108
_MIN_MAGNITUDE = 8.515920e-109

SeriesKey = tuple[str, Labels]


class Converter:
    """Keeps the previous counter values of each target and turns scrapes into datums."""

    def __init__(self, rules: DimensionRules) -> None:
        self.rules = rules
        self._last: dict[str, dict[SeriesKey, float]] = {}
        self._created: dict[str, dict[SeriesKey, float]] = {}

    def convert(
        self, target: str, families: list[Family], timestamp: float
    ) -> list[dict[str, Any]]:
        """The datums of one scrape of ``target`` taken at Unix time ``timestamp``."""
        previous = self._last.get(target)
        old_created = self._created.get(target, {})
        current: dict[SeriesKey, float] = {}
        created: dict[SeriesKey, float] = {}
        counters: dict[tuple[str, tuple], float] = defaultdict(float)
        gauges: dict[tuple[str, tuple], list[float]] = defaultdict(list)
        distributions: dict[tuple[str, tuple], dict[float, float]] = defaultdict(
            lambda: defaultdict(float)
        )

        for family in families:
            wanted = family.name in self.rules or any(s.name in self.rules for s in family.samples)
            if not wanted:
                continue
            if family.type == "gauge":
                for s in family.samples:
                    for dims in self._project(s.name, s.labels):
                        gauges[(s.name, dims)].append(s.value)
                continue
            groups: dict[Labels, list[Sample]] = defaultdict(list)
            for s in family.samples:
                group = tuple((k, v) for k, v in s.labels if k not in ("le", "quantile"))
                if s.name == family.name + "_created":
                    created[(family.name, group)] = s.value
                elif any(k == "quantile" for k, _ in s.labels):
                    for dims in self._project(s.name, s.labels):
                        gauges[(s.name, dims)].append(s.value)
                else:
                    groups[group].append(s)
            for group, samples in groups.items():
                key = (family.name, group)
                reset = (
                    key in old_created and created.get(key, old_created[key]) != old_created[key]
                )
                if previous is not None and not reset:
                    reset = any(
                        s.value < previous.get((s.name, s.labels), -math.inf) for s in samples
                    )
                increases = {}
                for s in samples:
                    current[(s.name, s.labels)] = s.value
                    if previous is None:
                        continue  # first scrape of this target: baseline only
                    before = previous.get((s.name, s.labels))
                    increases[s] = s.value if reset or before is None else s.value - before
                for s, inc in increases.items():
                    for dims in self._project(s.name, s.labels):
                        counters[(s.name, dims)] += inc
                if family.type == "histogram" and family.name in self.rules and increases:
                    for dims in self._project(family.name, group):
                        _add_buckets(distributions[(family.name, dims)], increases)

        self._last[target] = current
        self._created[target] = created
        when = datetime.fromtimestamp(timestamp, UTC)
        datums: list[dict[str, Any]] = []
        for (name, dims), total in counters.items():
            datums.extend(_datums(name, dims, when, {total: 1.0}))
        for (name, dims), values in gauges.items():
            counts: dict[float, float] = defaultdict(float)
            for value in values:
                counts[value] += 1.0
            datums.extend(_datums(name, dims, when, counts))
        for (name, dims), buckets in distributions.items():
            datums.extend(_datums(name, dims, when, {b: c for b, c in buckets.items() if c > 0}))
        return datums

    def _project(self, name: str, labels: Labels) -> list[tuple[tuple[str, str], ...]]:
        """The dimension tuples a series contributes to (one per allowlisted set it covers)."""
        values = dict(labels)
        out = []
        for dims in self.rules.dimension_sets(name):
            if all(values.get(d) for d in dims):
                out.append(tuple((d, values[d][:1024]) for d in dims))
        return out


def _add_buckets(into: dict[float, float], increases: dict[Sample, float]) -> None:
    """Add the non-cumulative per-bucket increases of one histogram series."""
    buckets = sorted(
        (float(dict(s.labels)["le"]), inc)
        for s, inc in increases.items()
        if s.name.endswith("_bucket")
    )
    finite = [bound for bound, _ in buckets if math.isfinite(bound)]
    if not finite:
        return
    below = 0.0
    for bound, cumulative in buckets:
        into[bound if math.isfinite(bound) else finite[-1]] += max(cumulative - below, 0.0)
        below = max(cumulative, below)


def _clean(value: float) -> float | None:
    if not math.isfinite(value) or abs(value) > _MAX_MAGNITUDE:
        return None
    return 0.0 if abs(value) < _MIN_MAGNITUDE else value


def _datums(
    name: str, dims: tuple, when: datetime, counts: dict[float, float]
) -> list[dict[str, Any]]:
    """One datum (``Value``) or several (``Values``/``Counts``, 150 distinct values each)."""
    items = sorted(
        (cleaned, count)
        for value, count in counts.items()
        if (cleaned := _clean(value)) is not None
    )
    base: dict[str, Any] = {"MetricName": name, "Timestamp": when}
    if dims:
        base["Dimensions"] = [{"Name": k, "Value": v} for k, v in dims]
    if len(items) == 1 and items[0][1] == 1.0:
        return [{**base, "Value": items[0][0]}]
    return [
        {
            **base,
            "Values": [v for v, _ in items[i : i + MAX_VALUES_PER_DATUM]],
            "Counts": [c for _, c in items[i : i + MAX_VALUES_PER_DATUM]],
        }
        for i in range(0, len(items), MAX_VALUES_PER_DATUM)
    ]
