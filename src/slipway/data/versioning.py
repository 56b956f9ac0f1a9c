"""Dataset versions under DVC: seed and push them, and pull exactly one version back.

Pulling one version is :mod:`slipway.data.pull`. Everything goes through DVC's own APIs (``dvc.repo.Repo`` and ``dvc.api.DVCFileSystem``): the
remote is named in configuration, never reached through hand-built paths. The remote is a local
folder by default and ``s3://bucket/prefix`` (with an optional endpoint) in production.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from slipway.errors import ConfigError, DatasetVersionError, RemoteUnavailableError

REMOTE_NAME = "slipway"


@dataclass(frozen=True)
class DatasetRef:
    """What identifies the data a model was trained on."""

    name: str  # the dataset, its folder under data/, e.g. "breast-cancer"
    version: str  # readable name, e.g. "v2"
    path: str  # path inside the DVC project, e.g. "data/breast-cancer/v2.csv"
    md5: str  # DVC content hash
    rev: str  # git revision of the DVC project the pointer was read at

    @property
    def label(self) -> str:
        """``v2@8cd7b2be`` — the version name plus the start of its content hash."""
        return f"{self.version}@{self.md5[:8]}"

    def to_dict(self) -> dict[str, str]:
        """The five fields as a plain dict (Dataset artifact metadata, package manifest)."""
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> DatasetRef:
        """Rebuild the reference from a KFP Dataset artifact's metadata (written by pull-data).

        Raises:
            DatasetVersionError: a field is missing (an artifact of an older pull-data).
        """
        keys = [f.name for f in fields(cls)]
        missing = [key for key in keys if key not in metadata]
        if missing:
            raise DatasetVersionError(
                f"dataset artifact metadata lacks {', '.join(missing)}; it was written by an "
                "older pull-data: rerun the whole pipeline"
            )
        return cls(**{key: str(metadata[key]) for key in keys})


def remote_config(remote_url: str, endpoint_url: str | None = None) -> dict[str, Any]:
    """DVC config that makes ``remote_url`` the default remote (S3 endpoint optional)."""
    remote: dict[str, Any] = {"url": remote_url}
    if endpoint_url and remote_url.startswith("s3://"):
        remote["endpointurl"] = endpoint_url
    return {"core": {"remote": REMOTE_NAME}, "remote": {REMOTE_NAME: remote}}


def md5_file(path: Path) -> str:
    """Hex MD5 of the file at ``path``, the content hash DVC writes into ``.dvc`` pointers."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_repo(project_dir: Path, remote_url: str, endpoint_url: str | None):
    """Open the DVC project at ``project_dir`` with ``remote_url`` as its default remote.

    Raises:
        ConfigError: ``project_dir`` is not a DVC project.
    """
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(project_dir), config=remote_config(remote_url, endpoint_url))
    except NotDvcRepoError as e:
        raise ConfigError(
            f"{project_dir} is not a DVC project (no .dvc folder); check SLIPWAY_PROJECT_DIR"
        ) from e


def seed_datasets(
    project_dir: Path, remote_url: str, endpoint_url: str | None = None
) -> list[DatasetRef]:
    """Write every shipped dataset version, track it with DVC and push it to the remote.

    The shipped datasets are :data:`slipway.data.shipped.SHIPPED`: breast-cancer always, penguins
    and diamonds when their package is installed (skipped otherwise). Deterministic: on an
    unchanged checkout the ``.dvc`` pointers come out byte-identical.

    Returns:
        One :class:`DatasetRef` per version written, in :data:`~slipway.data.shipped.SHIPPED` order.

    Raises:
        RemoteUnavailableError: the push failed (remote unreachable or not writable).
    """
    from slipway.data.shipped import shipped_tables
    from slipway.data.table import write_csv

    repo = _open_repo(project_dir, remote_url, endpoint_url)
    tables, _ = shipped_tables()
    shapes = {}
    for table in tables:
        frame = table.build()
        write_csv(frame, project_dir / table.path)
        shapes[table.path] = frame.shape
    paths = [project_dir / table.path for table in tables]
    with repo:
        repo.add([str(path) for path in paths])
    for path, (rows, columns) in shapes.items():
        record_shape(project_dir / path, rows, columns)
    push_datasets(project_dir, remote_url, endpoint_url, targets=paths)
    return [
        DatasetRef(
            table.dataset,
            table.version,
            table.path.as_posix(),
            md5_file(project_dir / table.path),
            "workspace",
        )
        for table in tables
    ]


def record_shape(dest: Path, rows: int, columns: int) -> None:
    """Note the table's shape in its pointer's ``meta`` (DVC keeps that key as written)."""
    import yaml

    pointer = dest.with_name(f"{dest.name}.dvc")
    data = yaml.safe_load(pointer.read_text())
    data["meta"] = {"rows": rows, "columns": columns}
    tmp = pointer.with_name(f".{pointer.name}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, pointer)


def push_datasets(
    project_dir: Path,
    remote_url: str,
    endpoint_url: str | None = None,
    targets: list[Path] | None = None,
) -> int:
    """Push the DVC-tracked datasets in the local cache to the remote.

    Args:
        project_dir: the DVC project.
        remote_url: the remote (a folder or ``s3://bucket/prefix``).
        endpoint_url: S3 endpoint (a moto server in tests); ``None`` for AWS.
        targets: push only these tracked files (e.g. the one ``slipway data add`` just
            tracked); every tracked file when ``None``.

    Returns:
        How many files were uploaded (0 when the remote already had them all).

    Raises:
        RemoteUnavailableError: the remote cannot be written.
        DatasetVersionError: the local cache lacks a tracked file (run ``slipway data seed``).
    """
    from dvc.exceptions import CheckoutError, DvcException

    repo = _open_repo(project_dir, remote_url, endpoint_url)
    _ensure_local_remote(remote_url)
    with repo:
        try:
            # "missing" = neither in the local cache nor on the remote: a push would silently
            # upload nothing (a fresh clone has an empty cache)
            only = [str(path) for path in targets] if targets else None
            status = repo.status(targets=only, cloud=True, remote=REMOTE_NAME)
            missing = sorted(path for path, state in status.items() if state == "missing")
            if missing:
                raise DatasetVersionError(
                    f"the local DVC cache lacks {', '.join(missing)} and remote {remote_url!r} "
                    "does not have them either; run `slipway data seed` first"
                )
            return int(repo.push(targets=only, remote=REMOTE_NAME) or 0)
        except CheckoutError as e:
            raise DatasetVersionError(
                f"the DVC cache lacks tracked data ({e}); run `slipway data seed` first"
            ) from e
        except DvcException as e:
            raise RemoteUnavailableError(
                f"could not push datasets to DVC remote {remote_url!r}: {e}; check the URL, the "
                "endpoint and the credentials (SLIPWAY_DVC_REMOTE_URL, SLIPWAY_AWS_ENDPOINT_URL)"
            ) from e


def _ensure_local_remote(remote_url: str) -> None:
    if "://" not in remote_url:
        try:
            Path(remote_url).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RemoteUnavailableError(
                f"DVC remote folder {remote_url!r} cannot be created ({e.strerror}); set "
                "SLIPWAY_DVC_REMOTE_URL to a writable folder or an s3:// URL"
            ) from e


def unpushed_datasets(
    project_dir: Path, remote_url: str, endpoint_url: str | None = None
) -> list[str]:
    """Tracked dataset files that the remote does not hold (so ``seed``/``push`` is needed)."""
    from dvc.exceptions import DvcException

    repo = _open_repo(project_dir, remote_url, endpoint_url)
    _ensure_local_remote(remote_url)
    try:
        with repo:
            status = repo.status(cloud=True, remote=REMOTE_NAME)
    except DvcException as e:
        raise RemoteUnavailableError(
            f"cannot read DVC remote {remote_url!r}: {e}; check SLIPWAY_DVC_REMOTE_URL, "
            "SLIPWAY_AWS_ENDPOINT_URL and the credentials"
        ) from e
    return sorted(path for path, state in status.items() if state in ("missing", "new"))
