"""What every model store is: the package layout and the ``ModelStore`` protocol.

Layout (both kinds)::

    <root>/<model>/<version-code>/model.skops
    <root>/<model>/<version-code>/manifest.json   <- written last: its presence commits the package

A version code is written once. Writing it again is refused (:class:`VersionExistsError`), never an
overwrite; a half-written package is never visible under its final name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from slipway.errors import ModelPackageError

MANIFEST = "manifest.json"


class ModelStore(Protocol):
    """A create-only home for model packages (a folder or an S3 prefix)."""

    url: str

    def package_uri(self, model: str, version: str) -> str: ...

    def exists(self, model: str, version: str) -> bool: ...

    def put_package(self, model: str, version: str, files: Mapping[str, bytes]) -> str: ...

    def read(self, model: str, version: str, name: str) -> bytes: ...

    def list_versions(self, model: str) -> list[str]: ...

    def put_marker(self, model: str, name: str, data: bytes) -> str: ...

    def read_marker(self, model: str, name: str) -> bytes | None: ...


def ordered_files(files: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """The package files in write order: the manifest, which commits the package, last."""
    if MANIFEST not in files:
        raise ModelPackageError(f"a model package needs a {MANIFEST}; got {sorted(files)}")
    return [(k, v) for k, v in files.items() if k != MANIFEST] + [(MANIFEST, files[MANIFEST])]
