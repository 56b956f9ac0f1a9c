"""Promotion: registry version, version code, immutable model package, then the champion alias.

The order matters. The package is written before the alias moves, so that a champion always has a
package to serve; and every step is idempotent, so rerunning promotion for the same MLflow run
creates nothing new.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from slipway.config import Settings
from slipway.data import DatasetRef, read_csv, split_dataset
from slipway.errors import VersionExistsError
from slipway.packaging import MANIFEST, PackageInfo, build_package, open_model_store, parse_manifest
from slipway.params import DataParams, SearchParams
from slipway.registry.client import TAG_VERSION_CODE, get_client, move_alias, register_version
from slipway.versions import make_version_code


@dataclass
class Promotion:
    version_code: str
    registry_version: str
    package_uri: str
    created: bool  # False when this run had been promoted before
    efs_path: str | None = None  # local store: where the package is on the EFS folder

    def to_dict(self) -> dict:
        return asdict(self)


def promote_candidate(
    csv_path: Path,
    model_path: Path,
    run_id: str,
    model_uri: str,
    dataset: DatasetRef,
    expected_champion: str | None,
    holdout_metrics: dict[str, float],
    data_params: DataParams,
    search_params: SearchParams,
    settings: Settings,
) -> Promotion:
    """Register, package and crown the candidate logged by ``run_id``.

    Args:
        expected_champion: registry version that evaluate compared against (``None`` if none);
            the alias only moves if it still points there.

    Raises:
        RegistryError: the champion moved since evaluation.
        VersionExistsError: the version code exists in the store for a different run.
    """
    from slipway.packaging import loads_model

    client = get_client(settings.tracking_uri)
    name = settings.model_name
    version = register_version(client, name, model_uri, run_id)
    code = version.tags.get(TAG_VERSION_CODE) or make_version_code(int(version.version), run_id)
    for key, value in {
        TAG_VERSION_CODE: code,
        "dataset_version": dataset.version,
        "dataset_md5": dataset.md5,
        "git_commit": settings.git_commit,
        "mlflow_run_id": run_id,
    }.items():
        client.set_model_version_tag(name, version.version, key, value)

    store = open_model_store(
        settings.model_store_url, settings.aws_endpoint_url, settings.aws_region
    )
    created = not store.exists(name, code)
    if created:
        target = data_params.target
        train, _ = split_dataset(
            read_csv(csv_path), search_params.holdout_fraction, search_params.seed, target
        )
        info = PackageInfo(
            model_name=name,
            version_code=code,
            run_id=run_id,
            registry_version=int(version.version),
            dataset=dataset.to_dict(),
            git_commit=settings.git_commit,
            metrics=holdout_metrics,
        )
        blob = Path(model_path).read_bytes()
        model = loads_model(blob)
        files = build_package(
            model, train.drop(columns=[target]), info, float(train[target].mean()), blob=blob
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

    # --- EFS (issue #3): the champion marker that efs-sync retention reads (it cannot reach
    # MLflow), and on a local store the embedded stand-in of the Lambda (same verify + rename
    # code). On S3 the bucket notification runs the Lambda instead. Idempotent.
    from slipway.packaging import publish_champion

    promotion.efs_path = publish_champion(store, name, code, int(version.version), settings)
    # --- end EFS
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
