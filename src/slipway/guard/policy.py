"""What ``slipway guard`` watches, read once from the KPI catalog.

Every KPI marked ``rollback: true`` carries a ``guard`` block (a short-window PromQL expression
with one series per served version, and how many failing checks in a row roll back); the
catalog's top-level ``guard`` block sets the bake window, the check interval, the grace period
for missing data and the traffic expression. :func:`policy_from_catalog` turns both into a
:class:`GuardPolicy`, the only input of the decision core besides the observations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from slipway.errors import ConfigError
from slipway.monitoring import KpiCatalog, duration_seconds

__all__ = ["GuardPolicy", "KpiCheck", "policy_from_catalog"]

_OPERATORS = {
    "GreaterThanThreshold": (">", lambda v, t: v > t),
    "GreaterThanOrEqualToThreshold": (">=", lambda v, t: v >= t),
    "LessThanThreshold": ("<", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("<=", lambda v, t: v <= t),
}


@dataclass(frozen=True)
class KpiCheck:
    """One rollback KPI as the guard checks it.

    Attributes:
        name: The KPI name (``http-5xx-ratio``).
        expr: PromQL returning one series per served version (label ``version``).
        threshold: The KPI's threshold.
        comparison: The KPI's comparison (``GreaterThanThreshold`` ...): true means failing.
        consecutive: Failing checks in a row that roll the version back.
    """

    name: str
    expr: str
    threshold: float
    comparison: str
    consecutive: int

    def __post_init__(self) -> None:
        if self.comparison not in _OPERATORS:
            raise ConfigError(
                f"KPI {self.name}: comparison {self.comparison!r} is not one of "
                f"{', '.join(_OPERATORS)}"
            )
        if self.consecutive < 1:
            raise ConfigError(f"KPI {self.name}: consecutive {self.consecutive} must be >= 1")

    @property
    def operator(self) -> str:
        """The comparison as a symbol, for messages (``>``)."""
        return _OPERATORS[self.comparison][0]

    def failing(self, value: float) -> bool:
        """True when ``value`` breaches the threshold."""
        return bool(_OPERATORS[self.comparison][1](value, self.threshold))


@dataclass(frozen=True)
class GuardPolicy:
    """The bake window and the checks, all times in seconds.

    Attributes:
        checks: The rollback KPIs.
        traffic_expr: Inference requests per second, one series per version.
        bake_window_s: How long a new revision is watched.
        interval_s: Time between two checks.
        grace_period_s: How long missing data is not counted.
    """

    checks: tuple[KpiCheck, ...]
    traffic_expr: str
    bake_window_s: float
    interval_s: float
    grace_period_s: float

    def __post_init__(self) -> None:
        if not self.checks:
            raise ConfigError(
                "the guard has no KPI to check: mark KPIs rollback: true with a guard block "
                "in monitoring/kpis.yaml"
            )
        if not 0 < self.interval_s < self.bake_window_s:
            raise ConfigError(
                f"interval {self.interval_s:g} s must be > 0 and shorter than the bake window "
                f"({self.bake_window_s:g} s)"
            )
        if not 0 <= self.grace_period_s < self.bake_window_s:
            raise ConfigError(
                f"grace period {self.grace_period_s:g} s must be >= 0 and shorter than the bake "
                f"window ({self.bake_window_s:g} s)"
            )

    def with_times(
        self,
        *,
        bake_window_s: float | None = None,
        interval_s: float | None = None,
        grace_period_s: float | None = None,
    ) -> GuardPolicy:
        """A copy with some times overridden (command-line options); checked again."""
        return replace(
            self,
            bake_window_s=self.bake_window_s if bake_window_s is None else bake_window_s,
            interval_s=self.interval_s if interval_s is None else interval_s,
            grace_period_s=self.grace_period_s if grace_period_s is None else grace_period_s,
        )


def policy_from_catalog(catalog: KpiCatalog) -> GuardPolicy:
    """The guard's policy: every ``rollback: true`` KPI and the catalog's ``guard`` block.

    Args:
        catalog: The validated KPI catalog.

    Returns:
        The policy.

    Raises:
        ConfigError: the catalog has no guard block, or a rollback KPI has none.
    """
    if catalog.guard is None:
        raise ConfigError(
            "monitoring/kpis.yaml has no top-level guard block (bake_window, interval, "
            "grace_period, traffic): add one, see docs/rollback.md"
        )
    rollback = [kpi for kpi in catalog.kpis if kpi.rollback]
    missing = [kpi.name for kpi in rollback if kpi.guard is None]
    if missing:
        raise ConfigError(
            f"rollback KPIs without a guard block: {', '.join(missing)}; give each a guard "
            "block (expr by version, consecutive) or set rollback: false"
        )
    checks = tuple(
        KpiCheck(kpi.name, kpi.guard.expr, kpi.threshold, kpi.comparison, kpi.guard.consecutive)
        for kpi in rollback
        if kpi.guard is not None
    )
    spec = catalog.guard
    return GuardPolicy(
        checks=checks,
        traffic_expr=spec.traffic,
        bake_window_s=duration_seconds(spec.bake_window),
        interval_s=duration_seconds(spec.interval),
        grace_period_s=duration_seconds(spec.grace_period),
    )
