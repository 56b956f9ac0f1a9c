"""Bring a user's table in, and list the datasets under data/.

``add_dataset`` checks the file, copies it under ``data/<name>/``, tracks and pushes it with DVC
and drafts a spec; ``list_datasets`` shows every dataset with its versions.

Every check on the input runs before anything is written. If a step fails after the copy, what
was written is removed again: the file, its ``.dvc`` pointer, the cache object and the remote
object (those two only when this call created them).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from slipway.data.checks import normalise_frame, validate_with_spec
from slipway.data.infer import infer_spec, write_draft_spec
from slipway.data.spec import NAME_PATTERN, DatasetSpec, Task, load_dataset_spec, spec_path
from slipway.data.versioning import (
    REMOTE_NAME,
    DatasetRef,
    _open_repo,
    md5_file,
    push_datasets,
    record_shape,
)
from slipway.errors import DatasetSpecError, DatasetValidationError, DatasetVersionError

_VERSION = re.compile(r"^v(\d+)$")
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class AddedDataset:
    """What ``add_dataset`` stored: the DVC reference, the table's shape and the spec."""

    name: str
    ref: DatasetRef
    rows: int
    columns: int
    spec_path: Path
    spec_drafted: bool


@dataclass(frozen=True)
class DatasetVersionInfo:
    """One version of a dataset as its ``.dvc`` pointer describes it."""

    version: str
    path: str
    md5: str
    rows: int | None


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset folder under ``data/``: its task and spec (``None``: none valid) and versions."""

    name: str
    task: str | None
    versions: list[DatasetVersionInfo]
    spec: DatasetSpec | None = None


def read_table(path: Path, target: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a CSV or Parquet file, recognised by its content, and check it is usable.

    Returns:
        ``(frame, ext)`` where ``ext`` is ``"csv"`` or ``"parquet"``.

    Raises:
        DatasetValidationError: missing, empty, neither CSV nor Parquet, nested Parquet types,
            or the target column absent.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetValidationError(f"{path} does not exist or is not a file; check the path")
    if path.stat().st_size == 0:
        raise DatasetValidationError(f"{path} is empty; pass a CSV or Parquet file with rows")
    with path.open("rb") as f:
        head = f.read(65536)
    if head.startswith(_PARQUET_MAGIC):
        frame, ext = _read_parquet(path), "parquet"
    else:
        frame, ext = _read_csv(path, head), "csv"
    if frame.empty:
        raise DatasetValidationError(
            f"{path} has a header but no data rows; add rows or pass another file"
        )
    if target is not None and target not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:10]))
        raise DatasetValidationError(
            f"target column {target!r} is not in {path} (columns: {shown}); pass --target "
            "with one of them"
        )
    return frame, ext


def load_frame(path: Path, spec: DatasetSpec, *, require_target: bool = True) -> pd.DataFrame:
    """A dataset version's table (CSV or Parquet) with the spec's lossless dtype fixes applied.

    This is how every pipeline step after pull-data reads its Dataset artifact: the same reader
    as ``slipway data add`` (BOM, CRLF, quoting, Parquet by content), then
    :func:`~slipway.data.checks.normalise_frame`. Ignored columns are kept; steps select
    ``spec.feature_names`` themselves.

    Args:
        path: the table.
        spec: the dataset's spec.
        require_target: refuse a table without the spec's target column; validate-data passes
            ``False`` so that the missing column lands in its report with everything else.

    Raises:
        DatasetValidationError: the file is unreadable, empty, or lacks the spec's target.
    """
    frame, _ = read_table(path, spec.target if require_target else None)
    return normalise_frame(frame, spec)


def add_dataset(  # noqa: PLR0913 - the CLI options, each with a default or required
    source: Path,
    name: str,
    target: str,
    project_dir: Path,
    remote_url: str,
    endpoint_url: str | None = None,
    task: Task | None = None,
    version: str | None = None,
) -> AddedDataset:
    """Copy ``source`` to ``data/<name>/<version>.<ext>``, track it with DVC and push it.

    Args:
        source: the user's CSV or Parquet file.
        name: the dataset's name (its folder under ``data/``).
        target: the label column.
        project_dir: the DVC project (holds ``data/`` and ``.dvc/``).
        remote_url: DVC remote (folder or ``s3://``).
        endpoint_url: S3 endpoint override.
        task: the task for a drafted spec; inferred from the target when ``None``.
        version: the version name; the next ``v<N>`` when ``None``.

    Raises:
        DatasetValidationError: the file is unusable, or does not match the dataset's spec.
        DatasetSpecError: the name is malformed, or the spec contradicts ``target``/``task``.
        DatasetVersionError: the version exists already or is malformed.
        RemoteUnavailableError: the push failed (everything written was removed).
    """
    project_dir = Path(project_dir)
    if not re.match(NAME_PATTERN, name):
        raise DatasetSpecError(
            f"dataset name {name!r} is not a folder name slipway accepts; use lower-case "
            "letters, digits, '-' and '_' (e.g. 'house-prices')"
        )
    frame, ext = read_table(source, target)
    folder = project_dir / "data" / name
    version = new_version_name(folder, name, version)
    spec_file = spec_path(project_dir, name)
    drafted = not spec_file.exists()
    if drafted:
        spec = infer_spec(frame, name, target, task)
    else:
        spec = load_dataset_spec(spec_file)
        if spec.target != target or (task and spec.task != task):
            raise DatasetSpecError(
                f"{spec_file} says target {spec.target!r} and task {spec.task!r}, not "
                f"{target!r}/{task or spec.task!r}; pass the spec's values or edit the spec"
            )
        report = validate_with_spec(frame, spec)
        if not report.passed:
            kinds = sorted({v["check"] for v in report.violations})
            raise DatasetValidationError(
                f"{source} does not match {spec_file}: {len(report.violations)} violation(s) "
                f"({', '.join(kinds)}); fix the data or the spec",
                report=report.to_markdown(f"{name} {version}"),
            )
    dest = folder / f"{version}.{ext}"
    ref = store_version(
        project_dir,
        remote_url,
        endpoint_url,
        dest,
        lambda tmp: shutil.copyfile(source, tmp),
        frame.shape,
        after=(lambda: write_draft_spec(spec, project_dir)) if drafted else None,
    )
    return AddedDataset(
        name=name,
        ref=ref,
        rows=len(frame),
        columns=len(frame.columns),
        spec_path=spec_file,
        spec_drafted=drafted,
    )


def new_version_name(folder: Path, name: str, version: str | None) -> str:
    """``version``, or the next ``v<N>`` of the dataset in ``folder``, checked to be new.

    Raises:
        DatasetVersionError: the version exists already or is not a file name.
    """
    version = version or _next_version(folder)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", version):
        raise DatasetVersionError(
            f"version {version!r} is not a file name slipway accepts; use e.g. 'v3'"
        )
    existing = sorted(p.name for p in folder.glob(f"{version}.*.dvc")) if folder.is_dir() else []
    if existing:
        raise DatasetVersionError(
            f"dataset {name} already has version {version} ({existing[0]}); versions are never "
            "overwritten, pass another --version or leave it out for the next one"
        )
    return version


def store_version(  # noqa: PLR0913 - the DVC coordinates plus what to write
    project_dir: Path,
    remote_url: str,
    endpoint_url: str | None,
    dest: Path,
    write: Callable[[Path], object],
    shape: tuple[int, int],
    after: Callable[[], object] | None = None,
) -> DatasetRef:
    """Write a new version's file at ``dest``, track it with DVC, record its shape, push it.

    ``write(tmp)`` writes the file under a temporary name beside ``dest``; it is renamed only
    once complete. If any step fails (``after`` included: e.g. writing the spec), everything
    this call created is removed again: the file, its ``.dvc`` pointer and ``.gitignore`` entry,
    and the cache and remote objects when this call created them.

    Args:
        project_dir: the DVC project.
        remote_url: DVC remote (folder or ``s3://``).
        endpoint_url: S3 endpoint override.
        dest: ``data/<name>/<version>.<ext>`` inside ``project_dir``.
        write: writes the file's content to the path it is given.
        shape: ``(rows, columns)`` of the table, noted in the pointer's ``meta``.
        after: run last, still inside the rollback (``slipway data add`` writes its draft spec).

    Returns:
        The version's reference (``rev`` ``"workspace"``).

    Raises:
        RemoteUnavailableError: the push failed (everything written was removed).
    """
    folder = dest.parent
    tmp = dest.with_name(f".{dest.name}.tmp")
    written: _Written | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write(tmp)
        written = _Written(project_dir, remote_url, endpoint_url, dest, md5_file(tmp))
        os.replace(tmp, dest)
        repo = _open_repo(project_dir, remote_url, endpoint_url)
        with repo:
            repo.add([str(dest)])
        record_shape(dest, *shape)
        push_datasets(project_dir, remote_url, endpoint_url, targets=[dest])
        if after is not None:
            after()
    except BaseException:
        if written is not None:
            written.undo()
        else:
            tmp.unlink(missing_ok=True)
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    name, version = folder.name, dest.name.split(".", 1)[0]
    rel = dest.relative_to(project_dir).as_posix()
    return DatasetRef(name, version, rel, written.md5, "workspace")


def list_datasets(project_dir: Path) -> list[DatasetInfo]:
    """Every dataset folder under ``data/`` with its spec's task and its DVC-tracked versions."""
    root = Path(project_dir) / "data"
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            spec = load_dataset_spec(spec_path(project_dir, folder.name))
        except DatasetSpecError:
            spec = None
        task = spec.task if spec else None
        versions = []
        for pointer in sorted(folder.glob("*.dvc")):
            data = yaml.safe_load(pointer.read_text()) or {}
            out0 = (data.get("outs") or [{}])[0]
            rows = (data.get("meta") or {}).get("rows")
            versions.append(
                DatasetVersionInfo(
                    version=pointer.name.split(".", 1)[0],
                    path=(folder / out0.get("path", "")).relative_to(project_dir).as_posix(),
                    md5=str(out0.get("md5", "")),
                    rows=int(rows) if rows is not None else None,
                )
            )
        if versions or task:
            out.append(DatasetInfo(folder.name, task, versions, spec))
    return out


class _Written:
    """What one ``add`` created, so that a failure can take it back."""

    def __init__(self, project_dir: Path, remote_url: str, endpoint_url, dest: Path, md5: str):
        self.project_dir, self.remote_url, self.endpoint_url = project_dir, remote_url, endpoint_url
        self.dest, self.md5 = dest, md5
        self.had_cache, self.had_remote = self._objects()

    def _objects(self) -> tuple[bool, bool]:
        try:
            repo = _open_repo(self.project_dir, self.remote_url, self.endpoint_url)
            with repo:
                cache = repo.cache.local.exists(self.md5)
                remote = repo.cloud.get_remote_odb(REMOTE_NAME).exists(self.md5)
            return bool(cache), bool(remote)
        except Exception:  # unknown means "leave it alone" on undo
            return True, True

    def undo(self) -> None:
        folder = self.dest.parent
        for path in (
            self.dest,
            folder / f"{self.dest.name}.dvc",
            folder / f".{self.dest.name}.tmp",
        ):
            path.unlink(missing_ok=True)
        _drop_gitignore_entry(folder / ".gitignore", f"/{self.dest.name}")
        try:
            repo = _open_repo(self.project_dir, self.remote_url, self.endpoint_url)
            with repo:
                if not self.had_cache:
                    repo.cache.local.fs.rm(repo.cache.local.oid_to_path(self.md5))
                if not self.had_remote:
                    odb = repo.cloud.get_remote_odb(REMOTE_NAME)
                    if odb.exists(self.md5):
                        odb.fs.rm(odb.oid_to_path(self.md5))
        except Exception:  # noqa: S110 - best effort: the original error matters more
            pass
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _read_csv(path: Path, head: bytes) -> pd.DataFrame:
    if b"\x00" in head:
        raise DatasetValidationError(
            f"{path} is neither CSV nor Parquet (binary content); export it as CSV or Parquet"
        )
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut by the 64 KiB read
            raise DatasetValidationError(
                f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8 CSV or Parquet"
            ) from None
    try:
        return pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DatasetValidationError(
            f"{path} has no header or rows; pass a CSV file with a header line"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DatasetValidationError(
            f"{path} is not a readable CSV ({str(e).strip().splitlines()[-1]}); fix the file"
        ) from None


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise DatasetValidationError(f"{path} is not a readable Parquet file ({e}); fix it") from e
    nested = [f.name for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise DatasetValidationError(
            f"{path} has nested Parquet column(s) {', '.join(nested)} (lists, structs or maps); "
            "flatten them into plain columns first"
        )
    if schema.pandas_metadata is None:
        return _read_parquet_by_column(path, schema)
    # pandas wrote it: its metadata restores the index and extension dtypes (Int64, category);
    # self_destruct frees each Arrow column once converted
    return pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)


def _read_parquet_by_column(path: Path, schema) -> pd.DataFrame:
    """A Parquet file without pandas metadata, read and converted one column at a time.

    The peak is the frame plus one column in Arrow form, instead of the whole table twice
    (Arrow, then pandas): a million rows x 30 features peaks at 1.3x the frame's size above
    the interpreter's floor instead of 2.8x. The frame is the one ``read_table().to_pandas()``
    gives (same columns, order and dtypes; strings as shared objects).
    """
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(path)
    columns = {
        name: reader.read(columns=[name]).column(0).to_pandas(self_destruct=True)
        for name in schema.names
    }
    return pd.DataFrame(columns, copy=False)


def _next_version(folder: Path) -> str:
    numbers = [
        int(m.group(1))
        for p in (folder.glob("*.dvc") if folder.is_dir() else [])
        if (m := _VERSION.match(p.name.split(".", 1)[0]))
    ]
    return f"v{max(numbers, default=0) + 1}"


def _drop_gitignore_entry(path: Path, entry: str) -> None:
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() != entry]
    if lines:
        path.write_text("\n".join(lines) + "\n")
    else:
        path.unlink()
