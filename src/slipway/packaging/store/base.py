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

    def package_uri(self, model: str, version: str) -> str:
        """Where the package of ``model`` ``version`` lives (a path or an ``s3://`` URI)."""

    def exists(self, model: str, version: str) -> bool:
        """Whether the package is complete, i.e. its ``manifest.json`` exists."""

    def put_package(self, model: str, version: str, files: Mapping[str, bytes]) -> str:
        """Write a new package, ``manifest.json`` last, and return its URI.

        Args:
            model: registered model name.
            version: version code; written once.
            files: ``{file name: bytes}``; must include ``manifest.json``.

        Raises:
            VersionExistsError: the version already exists; versions are immutable.
            ModelPackageError: ``files`` has no ``manifest.json``.
        """

    def read(self, model: str, version: str, name: str) -> bytes:
        """The bytes of one file of a package.

        Raises:
            ModelPackageError: the file does not exist.
        """

    def list_versions(self, model: str) -> list[str]:
        """Sorted version codes of ``model`` whose package is complete."""

    def put_marker(self, model: str, name: str, data: bytes) -> str:
        """Write (overwrite) a small per-model marker such as ``champion.json``; return its URI."""

    def read_marker(self, model: str, name: str) -> bytes | None:
        """A marker's bytes, or ``None`` when it does not exist."""


def ordered_files(files: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """The package files in write order: the manifest, which commits the package, last."""
    if MANIFEST not in files:
        raise ModelPackageError(f"a model package needs a {MANIFEST}; got {sorted(files)}")
    return [(k, v) for k, v in files.items() if k != MANIFEST] + [(MANIFEST, files[MANIFEST])]
