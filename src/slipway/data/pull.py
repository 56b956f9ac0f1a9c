"""Pull exactly one dataset version from the DVC remote, with its spec, and verify its hash."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from slipway.data.catalog import open_project, resolve_dataset
from slipway.data.spec import DatasetSpec
from slipway.data.versioning import DatasetRef, md5_file
from slipway.errors import DatasetVersionError, RemoteUnavailableError

_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class PulledDataset:
    """What pull-data fetched: the version's reference and the dataset's spec at that revision."""

    ref: DatasetRef
    spec: DatasetSpec


def pull_dataset(  # noqa: PLR0913 - the DVC coordinates of one version
    repo: str,
    dataset: str,
    version: str,
    dest: Path,
    remote_url: str,
    endpoint_url: str | None = None,
    rev: str | None = None,
) -> PulledDataset:
    """Fetch one version of ``dataset`` from the DVC remote, verify its hash, read its spec.

    The file is ``data/<dataset>/<version>.csv`` or ``.parquet`` and the spec
    ``data/<dataset>/dataset.yaml``, both as the project holds them at ``rev``. Everything is
    checked before ``dest`` is written; a failed fetch leaves nothing there.

    Args:
        repo: the DVC project: a local path or a git URL.
        dataset: the dataset's name, e.g. ``"penguins"``.
        version: readable dataset version, e.g. ``"v2"``.
        dest: where to write the table (CSV or Parquet, as tracked).
        remote_url: DVC remote (folder or ``s3://``).
        endpoint_url: S3 endpoint override (moto server in tests).
        rev: git revision of the project to read the pointer at; ``None`` = working tree.

    Raises:
        DatasetVersionError: unknown dataset or version (the known ones are listed), or the
            content does not match its hash.
        DatasetSpecError: the dataset has no valid spec at ``rev``.
        RemoteUnavailableError: the remote cannot be read.
    """
    from dvc.exceptions import DvcException

    where = f"{repo!r} at revision {rev or 'workspace'!r}"
    with open_project(repo, rev, remote_url, endpoint_url) as fs:
        found = resolve_dataset(fs, dataset, version, where)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            fs.get_file(found.path, str(tmp))
        except (DvcException, OSError) as e:
            tmp.unlink(missing_ok=True)
            raise RemoteUnavailableError(
                f"could not fetch dataset {dataset} {version!r} (md5 {found.md5}) from DVC remote "
                f"{remote_url!r}: {e}; check that the remote is reachable and was pushed to "
                "(`slipway data push`)"
            ) from e
        actual = md5_file(tmp)
        if actual != found.md5:
            tmp.unlink(missing_ok=True)
            raise DatasetVersionError(
                f"dataset {dataset} {version!r} fetched from {remote_url!r} has md5 {actual}, but "
                f"its pointer says {found.md5}; the remote copy is corrupt, push it again with "
                "`slipway data push`"
            )
        os.replace(tmp, dest)
        # record the commit the pointer was read at, not a moving name like HEAD
        resolved = fs.repo.get_rev() if rev else "workspace"
    return PulledDataset(
        DatasetRef(dataset, found.version, found.path, found.md5, resolved), found.spec
    )


def count_rows(path: Path) -> int:
    """The data rows of a CSV or Parquet table, streamed: the file is never loaded whole.

    Parquet (recognised by content) answers from its footer; a CSV is read record by record
    (quoted newlines stay inside their record; blank lines do not count, as pandas skips them),
    header excluded. pull-data reports this as the run's ``dataset_rows`` without importing
    pandas or holding a million-row frame.
    """
    import csv

    path = Path(path)
    with path.open("rb") as f:
        head = f.read(4)
    if head == _PARQUET_MAGIC:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open(newline="", encoding="utf-8-sig") as f:
        records = sum(1 for record in csv.reader(f) if record)
    return max(records - 1, 0)
