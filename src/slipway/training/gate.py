"""The promotion gate: absolute thresholds, then the champion comparison, with directions.

Every metric has a direction (``slipway.params.LOWER_IS_BETTER``): a threshold is a floor for a
higher-is-better metric (``roc_auc``, ``f1_macro``, ``r2``) and a ceiling for a lower-is-better
one (``rmse``, ``mae``, ``log_loss``); the candidate must beat the champion by ``min_delta`` in
the metric's own direction. A champion whose score on this holdout fell far below what was
recorded at its promotion is reported as a likely data problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from slipway.params import LOWER_IS_BETTER, EvaluateParams


@dataclass
class Decision:
    """Whether to promote, and why, in words a person reads in the run summary.

    Attributes:
        promote: whether the candidate may become the champion.
        reason: the sentence the run summary shows; ends with the data problem, if any.
        candidate: the candidate's holdout metrics.
        champion: the champion's metrics on the same holdout (``None`` with no champion).
        champion_version: the champion's registry version the comparison used.
        failed_thresholds: each broken threshold, e.g. ``f1 0.8000 < 0.9000``.
        primary_metric: the metric the comparison used.
        data_problem: set when the champion's primary metric on this holdout is more than
            ``max_champion_drop`` worse than the score recorded at its promotion: likely a
            problem with the new data rather than with either model.
    """

    promote: bool
    reason: str
    candidate: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    failed_thresholds: list[str] = field(default_factory=list)
    primary_metric: str | None = None
    data_problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data (the pipeline's ``decision`` artifact)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision from :meth:`to_dict`'s data (read back by the promote step).

        Raises:
            TypeError: ``data`` lacks a field or has one a decision does not have.
        """
        return cls(**data)


def decide_promotion(  # noqa: PLR0913 - the gate's inputs, all named at the call sites
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    params: EvaluateParams,
    champion_version: str | None = None,
    champion_label: str | None = None,
    *,
    task: str,
    champion_recorded: float | None = None,
) -> Decision:
    """Promote when every threshold holds and the candidate beats the champion by ``min_delta``.

    With no champion yet, the thresholds alone decide.

    Args:
        candidate: the candidate's holdout metrics.
        champion: the champion's metrics on the same holdout, or ``None``.
        params: the ``evaluate`` section (primary metric, ``min_delta``, thresholds).
        champion_version: the champion's registry version.
        champion_label: how the reason names the champion (its version code).
        task: the dataset's task; picks the default primary metric.
        champion_recorded: the champion's primary metric as recorded at its promotion; with
            it, a collapse on this holdout is reported in ``data_problem``.

    Raises:
        ConfigError: the primary metric does not fit ``task``.
    """
    metric = params.primary_metric_for(task)
    failed = [_broken(name, candidate[name], limit) for name, limit in params.thresholds.items()]
    failed = [text for text in failed if text]
    problem = None
    if champion is not None and champion_recorded is not None:
        problem = _collapse(
            metric,
            champion[metric],
            champion_recorded,
            params.max_champion_drop,
            champion_label or champion_version,
        )

    def decision(promote: bool, reason: str) -> Decision:
        if problem:
            reason = f"{reason}; {problem}"
        return Decision(
            promote, reason, candidate, champion, champion_version, failed, metric, problem
        )

    if failed:
        floors = [text for text in failed if not text.endswith("(ceiling)")]
        ceilings = [text for text in failed if text.endswith("(ceiling)")]
        parts = [f"below the absolute thresholds: {'; '.join(floors)}"] if floors else []
        parts += [f"above the absolute ceilings: {'; '.join(ceilings)}"] if ceilings else []
        return decision(False, "; ".join(parts))
    if champion is None:
        return decision(
            True, f"no champion yet and every threshold holds ({metric} {candidate[metric]:.4f})"
        )
    lower = metric in LOWER_IS_BETTER
    gain = (
        (champion[metric] - candidate[metric]) if lower else (candidate[metric] - champion[metric])
    )
    versus = (
        f"{metric} {candidate[metric]:.4f} vs champion {champion_label or champion_version} "
        f"{champion[metric]:.4f} ({'lower' if lower else 'higher'} is better; improvement "
        f"{gain:+.4f}, needed >= {params.min_delta:+.4f})"
    )
    if gain >= params.min_delta:
        return decision(True, f"better than the champion: {versus}")
    return decision(False, f"not better than the champion: {versus}")


def _broken(name: str, value: float, limit: float) -> str | None:
    """The text of a broken threshold (``f1 0.8000 < 0.9000``), or ``None`` when it holds."""
    if name in LOWER_IS_BETTER:
        return f"{name} {value:.4f} > {limit:.4f} (ceiling)" if value > limit else None
    return f"{name} {value:.4f} < {limit:.4f}" if value < limit or math.isnan(value) else None


def _collapse(
    metric: str, now: float, recorded: float, max_drop: float, label: str | None
) -> str | None:
    """The data-problem sentence when ``now`` is more than ``max_drop`` worse than ``recorded``.

    "Worse" is relative to the recorded score and follows the metric's direction: a champion
    recorded at roc_auc 0.995 that scores 0.70 dropped 29.6%; one recorded at rmse 2.0 that
    scores 3.0 got 50% worse.
    """
    worse = (now - recorded) if metric in LOWER_IS_BETTER else (recorded - now)
    scale = abs(recorded) or 1.0
    if not (worse / scale > max_drop):
        return None
    who = f"champion {label}" if label else "the champion"
    return (
        f"likely a data problem: {who} scores {metric} {now:.4f} on this holdout, "
        f"{worse / scale:.1%} worse than the {recorded:.4f} recorded at its promotion "
        f"(limit {max_drop:.0%}); check the new dataset version before trusting either model"
    )
