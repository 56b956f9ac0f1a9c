"""The local model store: a folder; packages are renamed into place when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from slipway.errors import ModelPackageError, VersionExistsError
from slipway.packaging.store.base import MANIFEST, ordered_files


class LocalModelStore:
    """A folder. Packages are assembled in a temporary folder beside, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def package_dir(self, model: str, version: str) -> Path:
        """The folder of the package: ``<root>/<model>/<version>``."""
        return self.root / model / version

    def package_uri(self, model: str, version: str) -> str:
        """The package folder as a string path."""
        return str(self.package_dir(model, version))

    def exists(self, model: str, version: str) -> bool:
        """Whether the package folder holds its ``manifest.json``."""
        return (self.package_dir(model, version) / MANIFEST).is_file()

    def put_package(self, model: str, version: str, files: Mapping[str, bytes]) -> str:
        """Write the files into a temporary folder, then rename it into place; return its path.

        Raises:
            VersionExistsError: the version folder exists, or appeared during the write.
            ModelPackageError: ``files`` has no ``manifest.json``.
        """
        final = self.package_dir(model, version)
        ordered = ordered_files(files)
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
        """The bytes of one package file.

        Raises:
            ModelPackageError: the file does not exist.
        """
        path = self.package_dir(model, version) / name
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise ModelPackageError(f"model package file {path} does not exist") from e

    def list_versions(self, model: str) -> list[str]:
        """Sorted version codes of ``model`` whose folder holds a manifest (complete packages)."""
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
        """A marker's bytes, or ``None`` when it does not exist."""
        path = self.root / model / name
        return path.read_bytes() if path.is_file() else None
