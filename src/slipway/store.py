"""Model stores: create-only homes for model packages, a folder or an S3 prefix.

Layout (both kinds)::

    <root>/<model>/<version-code>/model.skops
    <root>/<model>/<version-code>/manifest.json   <- written last: its presence commits the package

A version code is written once. Writing it again is refused (:class:`VersionExistsError`), never an
overwrite; a half-written package is never visible under its final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from slipway.errors import ModelPackageError, VersionExistsError

MANIFEST = "manifest.json"


class ModelStore(Protocol):
    url: str

    def package_uri(self, model: str, version: str) -> str: ...

    def exists(self, model: str, version: str) -> bool: ...

    def put_package(self, model: str, version: str, files: Mapping[str, bytes]) -> str: ...

    def read(self, model: str, version: str, name: str) -> bytes: ...

    def list_versions(self, model: str) -> list[str]: ...

    def put_marker(self, model: str, name: str, data: bytes) -> str: ...

    def read_marker(self, model: str, name: str) -> bytes | None: ...


def _ordered(files: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    if MANIFEST not in files:
        raise ModelPackageError(f"a model package needs a {MANIFEST}; got {sorted(files)}")
    return [(k, v) for k, v in files.items() if k != MANIFEST] + [(MANIFEST, files[MANIFEST])]


class LocalModelStore:
    """A folder. Packages are assembled in a temporary folder beside, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def package_dir(self, model: str, version: str) -> Path:
        return self.root / model / version

    def package_uri(self, model: str, version: str) -> str:
        return str(self.package_dir(model, version))

    def exists(self, model: str, version: str) -> bool:
        return (self.package_dir(model, version) / MANIFEST).is_file()

    def put_package(self, model: str, version: str, files: Mapping[str, bytes]) -> str:
        final = self.package_dir(model, version)
        ordered = _ordered(files)
        if final.exists():
            raise VersionExistsError(
                f"model {model} version {version} already exists at {final}; versions are "
                "immutable: promote a new version instead"
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=final.parent))
        try:
            for name, data in ordered:
                (tmp / name).write_bytes(data)
            os.chmod(tmp, 0o755)  # noqa: S103 - packages are world-readable on purpose (EFS readers)
            try:
                # rename(2) onto an existing non-empty folder fails: create-only even in a race
                os.rename(tmp, final)
            except OSError as e:
                raise VersionExistsError(
                    f"model {model} version {version} was written by someone else at {final} "
                    "meanwhile; versions are immutable"
                ) from e
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return str(final)

    def read(self, model: str, version: str, name: str) -> bytes:
        path = self.package_dir(model, version) / name
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise ModelPackageError(f"model package file {path} does not exist") from e

    def list_versions(self, model: str) -> list[str]:
        base = self.root / model
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / MANIFEST).is_file())

    def put_marker(self, model: str, name: str, data: bytes) -> str:
        """Write a small mutable pointer file (e.g. ``champion.json``) beside the versions."""
        path = self.root / model / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return str(path)

    def read_marker(self, model: str, name: str) -> bytes | None:
        path = self.root / model / name
        return path.read_bytes() if path.is_file() else None


def open_model_store(url: str, endpoint_url: str | None = None, region: str = "us-east-1"):
    """The store behind ``url``: ``s3://bucket/prefix`` or a folder path."""
    if url.startswith("s3://"):
        from slipway.s3store import S3ModelStore

        return S3ModelStore.from_url(url, endpoint_url=endpoint_url, region=region)
    if "://" in url and not url.startswith("file://"):
        raise ModelPackageError(
            f"unsupported model store URL {url!r}; use a folder or s3://bucket/prefix"
        )
    return LocalModelStore(Path(url.removeprefix("file://")))
