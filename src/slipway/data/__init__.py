"""The dataset: its table and versions (DVC), its schema and validation, the holdout split.

Everything that knows what a row is lives here; the layers above receive validated frames
and a :class:`DatasetRef` (name, version, md5, commit) to record where the data came from.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DATASET_VERSIONS": "table",
        "PulledDataset": "pull",
        "count_rows": "pull",
        "ResolvedDataset": "catalog",
        "SHIPPED": "shipped",
        "available_datasets": "catalog",
        "latest_version": "catalog",
        "merge_params": "catalog",
        "open_project": "catalog",
        "resolve_dataset": "catalog",
        "settings_for_spec": "naming",
        "shipped_tables": "shipped",
        "DEFAULT_DATASET_VERSION": "table",
        "DatasetRef": "versioning",
        "DatasetSpec": "spec",
        "FeatureSpec": "spec",
        "ValidationReport": "report",
        "add_dataset": "intake",
        "breast_cancer_spec": "schema",
        "infer_spec": "infer",
        "list_datasets": "intake",
        "load_dataset_spec": "spec",
        "load_frame": "intake",
        "SPEC_METADATA_KEY": "spec",
        "spec_from_metadata": "spec",
        "spec_to_metadata": "spec",
        "read_table": "intake",
        "spec_path": "spec",
        "validate_with_spec": "checks",
        "write_draft_spec": "infer",
        "TARGET": "table",
        "build_dataset": "table",
        "dataset_spec": "table",
        "ensure_valid": "report",
        "pull_dataset": "pull",
        "push_datasets": "versioning",
        "read_csv": "table",
        "seed_datasets": "versioning",
        "split_dataset": "table",
        "synth_dataset": "synth",
        "synth_spec": "synth",
        "write_synthetic_table": "synth",
        "store_version": "intake",
        "unpushed_datasets": "versioning",
        "validate_dataset": "schema",
    },
)
