"""Training: fit a candidate, judge it, and track both in MLflow.

Grid search over whole scikit-learn Pipelines whose preprocessing comes from the dataset spec,
evaluation per task on the holdout and against the champion, the MLflow tracking of both, and
what a person looks at: the holdout figures and the run's HTML report.

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
        "FigureError": "figures",
        "RunReport": "report",
        "SearchResult": "search",
        "ShardFailedError": "fanout",
        "Sharding": "pipeline_run",
        "TrainedCandidate": "pipeline_run",
        "build_preprocessor": "features",
        "decide_promotion": "gate",
        "ensure_experiment": "tracking",
        "evaluate_candidate": "evaluate",
        "feature_frame": "features",
        "fit_grid_search": "search",
        "holdout_figures": "figures",
        "load_run_report": "report",
        "log_model": "tracking",
        "make_estimator": "estimators",
        "plan_search": "fanout",
        "run_shard": "fanout",
        "log_report_inputs": "report",
        "model_figures": "figures",
        "mlflow_client": "tracking",
        "render_figures": "figures",
        "render_report": "report",
        "report_evaluation": "report",
        "run_summary": "tracking",
        "score_model": "metrics",
        "train_candidate": "train",
        "validation_with_findings": "report",
        "write_report": "report",
        "write_run_report": "report",
    },
)
