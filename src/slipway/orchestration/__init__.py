"""Running the compiled training pipeline, here or on a Kubeflow Pipelines endpoint.

Locally under ``kfp.local`` (the compiled YAML, never the Python function; ``run_training`` is
all of ``slipway run`` but the printing), on a Kubeflow Pipelines endpoint (``submit``), and the
pipeline run metrics pushed to the Pushgateway.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PipelineRunMetrics": "pipeline_metrics",
        "RunProgress": "run",
        "TaskStatus": "task_log",
        "TrainingRequest": "request",
        "dataset_params": "request",
        "resolve_request": "request",
        "TrainingRunResult": "run",
        "champion_version": "run",
        "failed_task_of": "local_run",
        "latest_report": "run",
        "run_training": "run",
        "SubmitPlan": "submit",
        "connect": "submit",
        "parse_params": "submit",
        "pipeline_run_from_summary": "pipeline_metrics",
        "gc_paused_in_imports": "task_start",
        "pause_gc_in_imports": "task_start",
        "prepare_exit": "task_exit",
        "push_gauges": "pipeline_metrics",
        "push_pipeline_metrics": "pipeline_metrics",
        "reporting_step": "step_metrics",
        "read_package": "submit",
        "resolve_version_name": "submit",
        "run_compiled_pipeline": "local_run",
        "submit_pipeline": "submit",
        "to_kfp_cron": "submit",
    },
)
