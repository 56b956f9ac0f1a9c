"""A grid search cut into shards that separate tasks fit, and merged back into one result.

``GridSearchCV`` fits every (candidate, CV fold) pair in one process. To spread a big search over
Kubeflow tasks (``dsl.ParallelFor``), the same pairs are numbered in ``GridSearchCV``'s order
(:class:`~sklearn.model_selection.ParameterGrid` order, then fold order), dealt into shards, fitted
by :func:`fit_shard` wherever the shard runs, and put back together by :func:`merge_shards`. Each
pair is fitted exactly as ``GridSearchCV`` fits it (a clone of the template with the candidate's
parameters, the same folds from the same splitter, the same scorer), so the merged mean and std
per candidate, the ranking and the best parameters equal a single ``GridSearchCV``'s.

A shard's result is plain JSON (candidate index, fold, score, timings), so a task can write it as
an artifact and the reduce task can list the artifacts it was given.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from slipway.errors import ConfigError


@dataclass(frozen=True)
class FoldScore:
    """One fitted (candidate, fold) pair.

    Attributes:
        candidate: the candidate's index in ``ParameterGrid(param_grid)`` order.
        fold: the CV split's index.
        score: the scorer's value on the fold's validation rows (higher is better).
        fit_time: seconds spent fitting.
        score_time: seconds spent scoring.
        shard: the shard that fitted it.
    """

    candidate: int
    fold: int
    score: float
    fit_time: float
    score_time: float
    shard: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (a shard artifact holds a list of these)."""
        return asdict(self)


@dataclass(frozen=True)
class CandidateScore:
    """The merged cross-validation result of one candidate.

    Attributes:
        candidate: its index in ``ParameterGrid`` order.
        params: its parameters, as ``ParameterGrid`` yields them.
        mean_score: mean validation score over the folds (``mean_test_score``).
        std_score: population std of those scores (``std_test_score``).
        rank: 1 for the best; ties share the lowest rank (``rank_test_score``).
        fit_time: mean fit seconds over the folds.
        shards: the shards that fitted its folds.
        round: for a halving search, the last round the candidate ran in (``None``: grid).
        rows: for a halving search, the training rows of that round (``None``: grid, all).
    """

    candidate: int
    params: dict[str, Any]
    mean_score: float
    std_score: float
    rank: int
    fit_time: float
    shards: tuple[int, ...]
    round: int | None = None
    rows: int | None = None


@dataclass(frozen=True)
class MergedSearch:
    """Every candidate's merged scores, in ``ParameterGrid`` order, and the best one."""

    candidates: list[CandidateScore]

    @property
    def best(self) -> CandidateScore:
        """The first candidate of rank 1, as ``GridSearchCV.best_index_`` picks it."""
        return min(self.candidates, key=lambda c: (c.rank, c.candidate))


def count_fits(param_grid: list[dict[str, list[Any]]] | dict[str, list[Any]], n_splits: int) -> int:
    """How many (candidate, fold) fits the search performs: candidates times folds."""
    from sklearn.model_selection import ParameterGrid

    return len(ParameterGrid(param_grid)) * n_splits


def shard_fits(n_fits: int, shards: int) -> list[list[int]]:
    """Deal fit numbers ``0 … n_fits-1`` into ``shards`` contiguous slices of near-equal size.

    Contiguous slices keep a candidate's folds together where they fit, so a shard clones and
    configures as few pipelines as possible.

    Raises:
        ConfigError: ``shards`` is below 1 or above the number of fits.
    """
    if shards < 1:
        raise ConfigError(f"search_shards={shards} is below 1; pass 1 or more")
    if shards > n_fits:
        raise ConfigError(
            f"search_shards={shards} is more than the {n_fits} fits of the grid "
            f"(candidates × CV folds); pass at most {n_fits}"
        )
    bounds = [round(i * n_fits / shards) for i in range(shards + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(shards)]


def fit_shard(  # noqa: PLR0913 - the search's own inputs, each required
    template: Any,
    param_grid: list[dict[str, list[Any]]] | dict[str, list[Any]],
    x: Any,
    y: Any,
    cv: Any,
    scoring: Any,
    shard: int,
    shards: int,
) -> list[FoldScore]:
    """Fit and score the fits of shard ``shard`` of ``shards``, as ``GridSearchCV`` would.

    Args:
        template: the unfitted template Pipeline (cloned for every fit, never fitted itself).
        param_grid: the grid in ``GridSearchCV`` form (a dict or a list of dicts).
        x: the training features.
        y: the training labels.
        cv: a deterministic splitter (e.g. ``StratifiedKFold(shuffle=True, random_state=…)``):
            every shard must see the same folds.
        scoring: a scikit-learn scorer name, or a scorer (``make_scorer``) as the search uses.
        shard: this shard's index, ``0 … shards-1``.
        shards: how many shards the search was cut into.

    Returns:
        One :class:`FoldScore` per fit of the shard.

    Raises:
        ConfigError: ``shard`` is not in ``0 … shards-1`` or ``shards`` does not fit the grid.
    """
    from sklearn.base import clone
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import ParameterGrid

    if not 0 <= shard < shards:
        raise ConfigError(
            f"shard {shard} is not in 0…{shards - 1}; pass a shard index below {shards}"
        )
    candidates = list(ParameterGrid(param_grid))
    splits = list(cv.split(x, y))
    mine = shard_fits(len(candidates) * len(splits), shards)[shard]
    scorer = get_scorer(scoring)
    out = []
    for fit in mine:
        candidate, fold = divmod(fit, len(splits))
        train, test = splits[fold]
        params = {k: clone(v, safe=False) for k, v in candidates[candidate].items()}
        estimator = clone(template).set_params(**params)
        started = time.perf_counter()
        estimator.fit(_rows(x, train), _rows(y, train))
        fitted = time.perf_counter()
        score = float(scorer(estimator, _rows(x, test), _rows(y, test)))
        out.append(
            FoldScore(candidate, fold, score, fitted - started, time.perf_counter() - fitted, shard)
        )
    return out


def merge_shards(
    param_grid: list[dict[str, list[Any]]] | dict[str, list[Any]],
    n_splits: int,
    results: list[list[FoldScore]],
) -> MergedSearch:
    """Put the shards' fold scores back together into ``GridSearchCV``'s per-candidate result.

    Raises:
        ConfigError: a fit is missing or appears twice (a shard's artifact is absent, or two
            shards overlap); the message names the candidates concerned.
    """
    from sklearn.model_selection import ParameterGrid

    candidates = list(ParameterGrid(param_grid))
    table: dict[tuple[int, int], FoldScore] = {}
    repeated = set()
    for shard_result in results:
        for score in shard_result:
            key = (score.candidate, score.fold)
            if key in table:
                repeated.add(score.candidate)
            table[key] = score
    missing = sorted(
        {c for c in range(len(candidates)) for f in range(n_splits) if (c, f) not in table}
    )
    if missing or repeated:
        problem = "; ".join(
            [f"no score for candidate(s) {missing}"] * bool(missing)
            + [f"candidate(s) {sorted(repeated)} scored twice"] * bool(repeated)
        )
        raise ConfigError(
            f"the shard results do not cover the grid exactly once: {problem}; rerun the search "
            "with every shard's artifact passed to the merge"
        )
    means, stds = [], []
    for c in range(len(candidates)):
        scores = np.array([table[c, f].score for f in range(n_splits)])
        means.append(float(np.average(scores)))
        stds.append(float(np.sqrt(np.average((scores - means[-1]) ** 2))))
    ranks = _min_rank([-m if not math.isnan(m) else math.inf for m in means])
    return MergedSearch(
        [
            CandidateScore(
                candidate=c,
                params=candidates[c],
                mean_score=means[c],
                std_score=stds[c],
                rank=ranks[c],
                fit_time=float(np.mean([table[c, f].fit_time for f in range(n_splits)])),
                shards=tuple(sorted({table[c, f].shard for f in range(n_splits)})),
            )
            for c in range(len(candidates))
        ]
    )


def _min_rank(values: list[float]) -> list[int]:
    """``scipy.stats.rankdata(values, method="min")`` as ints (what ``GridSearchCV`` uses)."""
    from scipy.stats import rankdata

    return [int(r) for r in rankdata(values, method="min")]


def _rows(data: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of a frame, series or array (``GridSearchCV``'s ``_safe_indexing``)."""
    from sklearn.utils import _safe_indexing

    return _safe_indexing(data, index)
