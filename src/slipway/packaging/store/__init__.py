"""Model stores: create-only homes for model packages, a folder or an S3 prefix.

``open_model_store`` picks the kind from the URL; both kinds share the layout and the
:class:`ModelStore` protocol of :mod:`slipway.packaging.store.base`.
"""

from __future__ import annotations

from pathlib import Path

from slipway.errors import ModelPackageError
from slipway.packaging.store.base import MANIFEST, ModelStore
from slipway.packaging.store.local import LocalModelStore

__all__ = ["MANIFEST", "LocalModelStore", "ModelStore", "open_model_store"]


def open_model_store(
    url: str, endpoint_url: str | None = None, region: str = "us-east-1"
) -> ModelStore:
    """The store behind ``url``: ``s3://bucket/prefix`` or a folder path."""
    if url.startswith("s3://"):
        from slipway.packaging.store.s3 import S3ModelStore

        return S3ModelStore.from_url(url, endpoint_url=endpoint_url, region=region)
    if "://" in url and not url.startswith("file://"):
        raise ModelPackageError(
            f"unsupported model store URL {url!r}; use a folder or s3://bucket/prefix"
        )
    return LocalModelStore(Path(url.removeprefix("file://")))
