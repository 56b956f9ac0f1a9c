"""Training: fit a candidate, judge it, and track both in MLflow.

Grid search over whole scikit-learn Pipelines whose preprocessing comes from the dataset spec,
evaluation per task on the holdout and against the champion, and the MLflow tracking of both.

One MLflow run per pipeline run: ``train_candidate`` creates it, ``evaluate_candidate`` reopens
it and decides whether the candidate may be promoted.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Champion": "evaluate",
        "Curves": "metrics",
        "Decision": "gate",
        "Evaluation": "evaluate",
        "MISSING_CATEGORY": "features",
        "Residuals": "metrics",
        "SearchResult": "search",
        "TrainedCandidate": "train",
        "build_preprocessor": "features",
        "decide_promotion": "gate",
        "ensure_experiment": "tracking",
        "evaluate_candidate": "evaluate",
        "feature_frame": "features",
        "fit_grid_search": "search",
        "log_model": "tracking",
        "make_estimator": "estimators",
        "mlflow_client": "tracking",
        "run_summary": "tracking",
        "score_model": "metrics",
        "train_candidate": "train",
    },
)
