"""Dataset versions under DVC: seed and push them, and pull exactly one version back.

Everything goes through DVC's own APIs (``dvc.repo.Repo`` and ``dvc.api.DVCFileSystem``): the
remote is named in configuration, never reached through hand-built paths. The remote is a local
folder by default and ``s3://bucket/prefix`` (with an optional endpoint) in production.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slipway.data.table import DATASET_VERSIONS, DatasetSpec, build_dataset, dataset_spec, write_csv
from slipway.errors import ConfigError, DatasetVersionError, RemoteUnavailableError

REMOTE_NAME = "slipway"


@dataclass(frozen=True)
class DatasetRef:
    """What identifies the data a model was trained on."""

    version: str  # readable name, e.g. "v2"
    path: str  # path inside the DVC project, e.g. "data/breast-cancer/v2.csv"
    md5: str  # DVC content hash
    rev: str  # git revision of the DVC project the pointer was read at

    @property
    def label(self) -> str:
        """``v2@8cd7b2be`` — the version name plus the start of its content hash."""
        return f"{self.version}@{self.md5[:8]}"

    def to_dict(self) -> dict[str, str]:
        """The four fields as a plain dict (Dataset artifact metadata, package manifest)."""
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> DatasetRef:
        """Rebuild the reference from a KFP Dataset artifact's metadata (written by pull-data)."""
        return cls(**{key: str(metadata[key]) for key in ("version", "path", "md5", "rev")})


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
    """Write every dataset version, track it with DVC and push it to the remote.

    Deterministic: on an unchanged checkout the ``.dvc`` pointers come out byte-identical.

    Returns:
        One :class:`DatasetRef` per version, in :data:`DATASET_VERSIONS` order.

    Raises:
        RemoteUnavailableError: the push failed (remote unreachable or not writable).
    """
    repo = _open_repo(project_dir, remote_url, endpoint_url)
    specs = list(DATASET_VERSIONS.values())
    for spec in specs:
        write_csv(build_dataset(spec), project_dir / spec.path)
    with repo:
        repo.add([str(project_dir / spec.path) for spec in specs])
    push_datasets(project_dir, remote_url, endpoint_url)
    return [
        DatasetRef(
            spec.version, spec.path.as_posix(), md5_file(project_dir / spec.path), "workspace"
        )
        for spec in specs
    ]


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


def pull_dataset(
    repo: str,
    version: str,
    dest: Path,
    remote_url: str,
    endpoint_url: str | None = None,
    rev: str | None = None,
) -> DatasetRef:
    """Fetch exactly one dataset version from the DVC remote and verify its hash.

    Args:
        repo: the DVC project: a local path or a git URL.
        version: readable dataset version, e.g. ``"v2"``.
        dest: where to write the CSV.
        remote_url: DVC remote (folder or ``s3://``).
        endpoint_url: S3 endpoint override (moto server in tests).
        rev: git revision of the project to read the pointer at; ``None`` = working tree.

    Raises:
        DatasetVersionError: unknown version, or the content does not match its hash.
        RemoteUnavailableError: the remote cannot be read.
    """
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    spec: DatasetSpec = dataset_spec(version)
    path = spec.path.as_posix()
    try:
        fs = DVCFileSystem(repo, rev=rev, config=remote_config(remote_url, endpoint_url))
    except (RevError, DvcException) as e:
        raise DatasetVersionError(
            f"cannot open DVC project {repo!r} at revision {rev!r}: {e}; check SLIPWAY_DVC_REPO "
            "and the dataset_rev pipeline parameter"
        ) from e
    try:
        try:
            info = fs.info(path)
        except FileNotFoundError as e:
            raise DatasetVersionError(
                f"dataset version {version!r} has no DVC pointer {path}.dvc in {repo!r} at revision "
                f"{rev or 'workspace'!r}; run `slipway data seed` and commit the pointer"
            ) from e
        expected = (info.get("dvc_info") or {}).get("md5")
        if not expected:
            raise DatasetVersionError(
                f"{path} in {repo!r} is not tracked by DVC; run `slipway data seed`"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            fs.get_file(path, str(tmp))
        except (DvcException, OSError) as e:
            tmp.unlink(missing_ok=True)
            raise RemoteUnavailableError(
                f"could not fetch dataset {version!r} (md5 {expected}) from DVC remote {remote_url!r}: "
                f"{e}; check that the remote is reachable and was pushed to (`slipway data push`)"
            ) from e
        actual = md5_file(tmp)
        if actual != expected:
            tmp.unlink(missing_ok=True)
            raise DatasetVersionError(
                f"dataset {version!r} fetched from {remote_url!r} has md5 {actual}, but its pointer "
                f"says {expected}; the remote copy is corrupt, push it again with `slipway data push`"
            )
        os.replace(tmp, dest)
        # record the commit the pointer was read at, not a moving name like HEAD
        resolved = fs.repo.get_rev() if rev else "workspace"
        return DatasetRef(version, path, expected, resolved)
    finally:
        fs.close()  # a git URL is cloned to a temporary folder


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
