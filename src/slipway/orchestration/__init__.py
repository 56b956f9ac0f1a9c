"""Running the compiled training pipeline, here or on Kubeflow.

Locally under ``kfp.local`` (the compiled YAML, never the Python function), on a Kubeflow
Pipelines endpoint (``submit``), and the pipeline run metrics pushed to the Pushgateway.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PipelineRunMetrics": "pipeline_metrics",
        "SubmitPlan": "submit",
        "connect": "submit",
        "parse_params": "submit",
        "pipeline_run_from_summary": "pipeline_metrics",
        "push_pipeline_metrics": "pipeline_metrics",
        "read_package": "submit",
        "resolve_version_name": "submit",
        "run_compiled_pipeline": "local_run",
        "submit_pipeline": "submit",
        "to_kfp_cron": "submit",
    },
)
