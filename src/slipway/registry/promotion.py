"""Promotion: registry version, version code, immutable model package, then the champion alias.

The order matters. The package is written before the alias moves, so that a champion always has a
package to serve; and every step is idempotent, so rerunning promotion for the same MLflow run
creates nothing new.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.data import (
    DatasetRef,
    DatasetSpec,
    bound_freed_memory,
    feature_frame,
    load_frame,
    release_free_memory,
    split_dataset,
)
from slipway.errors import VersionExistsError
from slipway.packaging import (
    MANIFEST,
    PackageInfo,
    build_package,
    open_model_store,
    parse_manifest,
    publish_champion,
)
from slipway.params import SearchParams
from slipway.registry.client import TAG_VERSION_CODE, get_client, move_alias, register_version
from slipway.versions import make_version_code


@dataclass(frozen=True)
class CandidateRun:
    """The candidate one pipeline run produced: its MLflow run, its model, its data.

    Attributes:
        run_id: the MLflow run the search step created.
        model_uri: the model logged to that run (``models:/m-…``).
        model_path: the skops file the search step saved (the pipeline's model artifact).
        csv_path: the dataset version's CSV the candidate was trained on.
        dataset: what identifies that dataset version.
    """

    run_id: str
    model_uri: str
    model_path: Path
    csv_path: Path
    dataset: DatasetRef

    @classmethod
    def from_artifacts(cls, run_id: str, model_uri: str, model: Any, dataset: Any) -> CandidateRun:
        """Build it from the pipeline's KFP ``Model`` and ``Dataset`` artifacts (``.path``, ``.metadata``).

        Args:
            run_id: the MLflow run the search step created.
            model_uri: the model logged to that run.
            model: the search step's model artifact.
            dataset: the pull-data step's dataset artifact (its metadata is a DatasetRef).
        """
        return cls(
            run_id,
            model_uri,
            Path(model.path),
            Path(dataset.path),
            DatasetRef.from_metadata(dataset.metadata),
        )


@dataclass
class Promotion:
    """What promotion did.

    Attributes:
        version_code: the package's version code, e.g. ``v3-20261128-0123abcd``.
        registry_version: the MLflow registry version.
        package_uri: where the package is in the model store.
        created: ``False`` when this run had been promoted before (nothing new was written).
        efs_path: local store only: where the package is on the EFS folder.
    """

    version_code: str
    registry_version: str
    package_uri: str
    created: bool
    efs_path: str | None = None

    def to_dict(self) -> dict:
        """The promotion as JSON-ready data (logged to the run as ``promotion.json``)."""
        return asdict(self)


def promote_candidate(
    candidate: CandidateRun,
    expected_champion: str | None,
    holdout_metrics: Mapping[str, float],
    spec: DatasetSpec,
    search_params: SearchParams,
    settings: Settings,
) -> Promotion:
    """Register, package and crown the candidate logged by ``candidate.run_id``.

    Args:
        candidate: the run, logged model, model file and dataset of the candidate.
        expected_champion: registry version that evaluate compared against (``None`` if none);
            the alias only moves if it still points there.
        holdout_metrics: the candidate's holdout metrics, recorded in the package manifest.
        spec: the dataset's spec (target, task, feature kinds), recorded in the manifest.
        search_params: the ``search`` section (the split's fraction and seed).
        settings: the configuration (MLflow, model store, model name, code version).

    Returns:
        The version code, registry version and package of the champion.

    Raises:
        RegistryError: the champion moved since evaluation.
        VersionExistsError: the version code exists in the store for a different run.
    """
    from slipway.packaging import loads_model

    run_id, dataset = candidate.run_id, candidate.dataset
    client = get_client(settings.tracking_uri)
    name = settings.model_name
    version = register_version(client, name, candidate.model_uri, run_id)
    code = version.tags.get(TAG_VERSION_CODE) or make_version_code(int(version.version), run_id)
    for key, value in {
        TAG_VERSION_CODE: code,
        "dataset_version": dataset.version,
        "dataset_md5": dataset.md5,
        "git_commit": settings.git_commit,
        "mlflow_run_id": run_id,
    }.items():
        client.set_model_version_tag(name, version.version, key, value)

    store = open_model_store(settings)
    created = not store.exists(name, code)
    if created:
        # the same split as search and evaluate: statistics of the training rows, the ONNX
        # copy checked on (a sample of) the holdout that the candidate never saw; the table is
        # released once both sides are copied out of it (docs/benchmarks.md, peak memory)
        bound_freed_memory()
        train, holdout = split_dataset(
            load_frame(candidate.csv_path, spec),
            search_params.holdout_fraction,
            search_params.seed,
            spec.target,
        )
        release_free_memory()
        info = PackageInfo(
            model_name=name,
            version_code=code,
            run_id=run_id,
            registry_version=int(version.version),
            dataset=dataset.to_dict(),
            git_commit=settings.git_commit,
            metrics=dict(holdout_metrics),
        )
        blob = Path(candidate.model_path).read_bytes()
        model = loads_model(blob)
        train_y = train[spec.target].to_numpy()
        train_x, check_x = feature_frame(train, spec), feature_frame(holdout, spec)
        del train, holdout
        files = build_package(
            model, train_x, info, spec=spec, train_y=train_y, check_x=check_x, blob=blob
        )
        store.put_package(name, code, files)
    else:
        existing = parse_manifest(store.read(name, code, MANIFEST), store.package_uri(name, code))
        if existing.get("mlflow_run_id") != run_id:
            raise VersionExistsError(
                f"model {name} version {code} already exists for MLflow run "
                f"{existing.get('mlflow_run_id')}, not {run_id}; versions are immutable"
            )

    move_alias(client, name, version.version, expected_champion)
    promotion = Promotion(code, str(version.version), store.package_uri(name, code), created)

    # the champion marker that efs-sync retention reads (it cannot reach MLflow), and on a local
    # store the embedded stand-in of the Lambda (same verify + rename code); on S3 the bucket
    # notification runs the Lambda instead. Idempotent.
    promotion.efs_path = publish_champion(store, name, code, int(version.version), settings)
    for key, value in {
        "slipway.version_code": code,
        "slipway.registry_version": str(version.version),
        "slipway.package_uri": promotion.package_uri,
        "slipway.promoted": "true",
        **({"slipway.efs_path": promotion.efs_path} if promotion.efs_path else {}),
    }.items():
        client.set_tag(run_id, key, value)
    client.log_text(run_id, json.dumps(promotion.to_dict(), indent=2), "promotion.json")
    return promotion
