"""Model stores: create-only homes for model packages, a folder or an S3 prefix.

``open_model_store`` picks the kind from the URL; both kinds share the layout and the
:class:`ModelStore` protocol of :mod:`slipway.packaging.store.base`.
"""

from __future__ import annotations

from pathlib import Path

from slipway.config import Settings
from slipway.errors import ModelPackageError
from slipway.packaging.store.base import MANIFEST, ModelStore
from slipway.packaging.store.local import LocalModelStore

__all__ = ["MANIFEST", "LocalModelStore", "ModelStore", "open_model_store", "store_at_url"]


def open_model_store(settings: Settings) -> ModelStore:
    """The configured model store (``SLIPWAY_MODEL_STORE_URL``, with the AWS endpoint and region).

    Args:
        settings: where the store is (``model_store_url``) and how AWS is reached.

    Raises:
        ModelPackageError: the URL is neither a folder nor ``s3://bucket/prefix``.
    """
    return store_at_url(settings.model_store_url, settings.aws_endpoint_url, settings.aws_region)


def store_at_url(url: str, endpoint_url: str | None, region: str) -> ModelStore:
    """The store behind ``url``: ``s3://bucket/prefix`` or a folder path.

    Args:
        url: ``s3://bucket/prefix``, a folder path, or ``file://`` + a folder path.
        endpoint_url: S3 endpoint (a moto server in tests); ``None`` for AWS.
        region: AWS region of the bucket.

    Raises:
        ModelPackageError: the URL is neither a folder nor ``s3://bucket/prefix``.
    """
    if url.startswith("s3://"):
        from slipway.packaging.store.s3 import S3ModelStore

        return S3ModelStore.from_url(url, endpoint_url=endpoint_url, region=region)
    if "://" in url and not url.startswith("file://"):
        raise ModelPackageError(
            f"unsupported model store URL {url!r}; use a folder or s3://bucket/prefix"
        )
    return LocalModelStore(Path(url.removeprefix("file://")))
