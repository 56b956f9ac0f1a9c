"""The ``efs-sync`` Lambda: a promoted package on S3 becomes a verified folder on EFS.

Handler ``slipway.packaging.efs_sync.handler``. The bucket notification sends ``s3:ObjectCreated:*`` events
for ``models/*/manifest.json`` (the manifest is uploaded last, so its arrival means the package
is complete). For each record the function:

1. parses ``<prefix>/<model>/<version-code>/manifest.json`` and checks bucket and prefix against
   ``SLIPWAY_MODEL_STORE_URL``;
2. makes the work idempotent on (bucket, key, versionId, eTag) with powertools'
   ``DynamoDBPersistenceLayer`` on ``SLIPWAY_IDEMPOTENCY_TABLE``: a duplicate delivery returns
   the recorded result, a concurrent one is acknowledged and left to the first;
3. reads that exact manifest object version, then calls :func:`slipway.packaging.efs.sync_from_store`
   (verify every SHA-256, write to a temporary folder, rename into ``<mount>/<model>/<code>/``,
   retention that spares the champion of ``<model>/champion.json``).

A failure is logged, counted (``slipway_efs_sync_failures_total``; verification failures also
``slipway_efs_sync_rejected_total``) and re-raised, so Lambda retries and then dead-letters it.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from slipway.config import Settings, load_settings
from slipway.errors import ConfigError, ModelPackageError, VersionExistsError
from slipway.packaging.store import MANIFEST
from slipway.versions import VersionCode

# Powertools' documented pattern: one Logger and one Metrics per module, reused across warm
# invocations. They configure only their own "efs-sync" logger and an in-memory metric set.
logger = Logger(service="efs-sync")
metrics = Metrics(namespace="Slipway", service="efs-sync")

IDEMPOTENCY_KEY_PREFIX = "efs-sync"
IDEMPOTENCY_SECONDS = 24 * 3600  # longer than S3 redelivery and Lambda's 1 h retry window


@dataclass(frozen=True)
class PackageEvent:
    """The package one S3 event record announces.

    Attributes:
        bucket: The model store's bucket.
        key: The manifest's object key.
        prefix: The store's prefix in the bucket.
        model: The model name (from the key).
        version: The version code (from the key, parsed).
        version_id: The S3 object version of the manifest, if the bucket keeps versions.
        etag: The manifest's ETag.
    """

    bucket: str
    key: str
    prefix: str
    model: str
    version: VersionCode
    version_id: str | None
    etag: str | None

    def idempotency_data(self) -> dict[str, str | None]:
        """What makes one delivery the same as another: bucket, key, object version, ETag."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": self.etag,
        }


def parse_record(record: dict[str, Any], store_url: str) -> PackageEvent | None:
    """The package an S3 event record announces; ``None`` for a key that is not a manifest.

    Raises:
        ConfigError: the record comes from another bucket or prefix than ``store_url``, or the
            key's version folder is not a version code.
    """
    if not store_url.startswith("s3://"):
        raise ConfigError(
            f"SLIPWAY_MODEL_STORE_URL={store_url!r}: efs-sync needs an s3://bucket/prefix URL"
        )
    store_bucket, _, store_prefix = store_url[5:].partition("/")
    store_prefix = store_prefix.strip("/")
    s3 = record.get("s3") or {}
    bucket = (s3.get("bucket") or {}).get("name", "")
    obj = s3.get("object") or {}
    key = unquote_plus(obj.get("key", ""))  # event keys are URL-encoded
    if bucket != store_bucket:
        raise ConfigError(
            f"event for bucket {bucket!r}, but SLIPWAY_MODEL_STORE_URL is {store_url}; fix the "
            "bucket notification or the function's environment"
        )
    head = f"{store_prefix}/" if store_prefix else ""
    parts = key[len(head) :].split("/") if key.startswith(head) else []
    if len(parts) != 3 or parts[2] != MANIFEST:
        return None
    version = VersionCode.parse(parts[1])  # the key is where the code enters
    return PackageEvent(
        bucket, key, store_prefix, parts[0], version, obj.get("versionId"), obj.get("eTag")
    )


@functools.lru_cache(maxsize=4)
def _persistence(table: str, endpoint_url: str | None, region: str) -> Any:
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    client = boto3.session.Session().client(
        "dynamodb", endpoint_url=endpoint_url, region_name=region
    )
    return DynamoDBPersistenceLayer(table_name=table, boto3_client=client)


@functools.lru_cache(maxsize=4)
def _s3_client(endpoint_url: str | None, region: str) -> Any:
    from slipway.packaging.store.s3 import make_s3_client

    return make_s3_client(endpoint_url, region)


def sync_event(package: PackageEvent, settings: Settings, context: Any = None) -> dict[str, Any]:
    """Copy the announced package to EFS exactly once (idempotent on the S3 object version)."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
    )

    from slipway.packaging.efs import sync_from_store
    from slipway.packaging.store.s3 import S3ModelStore

    if not settings.idempotency_table:
        raise ConfigError("SLIPWAY_IDEMPOTENCY_TABLE is not set; efs-sync needs its DynamoDB table")
    config = IdempotencyConfig(expires_after_seconds=IDEMPOTENCY_SECONDS)
    if context is not None:
        config.register_lambda_context(context)
    layer = _persistence(settings.idempotency_table, settings.aws_endpoint_url, settings.aws_region)

    @idempotent_function(
        data_keyword_argument="data",
        persistence_store=layer,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    def copy_once(data: dict[str, Any]) -> dict[str, Any]:
        client = _s3_client(settings.aws_endpoint_url, settings.aws_region)
        store = S3ModelStore(package.bucket, package.prefix, client, settings.aws_endpoint_url)
        manifest = store.read(package.model, package.version, MANIFEST, data["version_id"])
        result = sync_from_store(store, package.model, package.version, settings, manifest)
        # counted here, where the work happens: a replayed duplicate returns the record only
        if result.created:
            metrics.add_metric("slipway_efs_sync_copied_total", MetricUnit.Count, 1)
        if result.pruned:
            pruned = len(result.pruned)
            metrics.add_metric("slipway_efs_sync_pruned_total", MetricUnit.Count, pruned)
        return result.to_dict()

    try:
        return copy_once(data=package.idempotency_data())
    except IdempotencyAlreadyInProgressError:
        # The same event is being copied by another invocation right now; it owns the work
        # (and Lambda retries it if it fails). Acknowledge this duplicate.
        logger.info("duplicate delivery while the first is in progress", extra=_fields(package))
        return {"model": package.model, "version": package.version, "status": "in-progress"}


def _fields(package: PackageEvent) -> dict[str, Any]:
    return {"bucket": package.bucket, "key": package.key, "version_id": package.version_id}


def _settings_from_env() -> Settings:
    overrides = {}
    # Lambda sets AWS_REGION; the template does not have to repeat it as SLIPWAY_AWS_REGION
    if "SLIPWAY_AWS_REGION" not in os.environ and os.environ.get("AWS_REGION"):
        overrides["aws_region"] = os.environ["AWS_REGION"]
    return load_settings(**overrides)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: settings from the environment, one sync per record."""
    started = time.monotonic()
    logger.append_keys(request_id=getattr(context, "aws_request_id", None))
    results: list[dict[str, Any]] = []
    try:
        settings = _settings_from_env()
        for record in event.get("Records", []):
            package = parse_record(record, settings.model_store_url)
            if package is None:
                logger.warning("not a package manifest; ignored", extra={"record": record})
                continue
            try:
                result = sync_event(package, settings, context)
            except (ModelPackageError, VersionExistsError) as e:
                metrics.add_metric("slipway_efs_sync_rejected_total", MetricUnit.Count, 1)
                logger.error(f"package rejected: {e}", extra=_fields(package))
                raise
            results.append(result)
            logger.info("package on EFS", extra={**_fields(package), "result": result})
    except Exception:
        metrics.add_metric("slipway_efs_sync_failures_total", MetricUnit.Count, 1)
        logger.exception("efs-sync failed")
        raise
    finally:
        seconds = time.monotonic() - started
        metrics.add_metric("slipway_efs_sync_duration_seconds", MetricUnit.Seconds, seconds)
        metrics.flush_metrics()
    return {"results": results}
