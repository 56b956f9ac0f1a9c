"""Training: fit a candidate, judge it, and track both in MLflow.

Grid search over whole scikit-learn Pipelines, evaluation on the holdout and against the
champion, and the MLflow tracking of both.

One MLflow run per pipeline run: ``train_candidate`` creates it, ``evaluate_candidate`` reopens
it and decides whether the candidate may be promoted.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Curves": "evaluate",
        "Decision": "evaluate",
        "Evaluation": "evaluate",
        "SearchResult": "search",
        "TrainedCandidate": "train",
        "ensure_experiment": "tracking",
        "decide_promotion": "evaluate",
        "evaluate_candidate": "evaluate",
        "fit_grid_search": "search",
        "log_model": "tracking",
        "mlflow_client": "tracking",
        "run_summary": "tracking",
        "score_model": "evaluate",
        "train_candidate": "train",
    },
)
