"""The datasets of a DVC project at one git revision: names, versions, spec and params override.

pull-data and ``slipway run``/``submit`` read the project through the same view
(``dvc.api.DVCFileSystem`` at ``rev``), so the CLI refuses an unknown dataset or version before
the run starts, with the answer pull-data would give. The layout is the one
``slipway data add`` and ``slipway data seed`` write::

    data/<dataset>/dataset.yaml         the spec (git)
    data/<dataset>/params.yaml          optional: the params.yaml keys this dataset changes (git)
    data/<dataset>/<version>.csv.dvc    one DVC pointer per version (git); the data on the remote
    data/<dataset>/<version>.parquet.dvc
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from slipway.data.spec import SPEC_FILE, DatasetSpec, parse_dataset_spec
from slipway.data.versioning import remote_config
from slipway.errors import ConfigError, DatasetSpecError, DatasetVersionError

#: A dataset's optional override of the project's ``params.yaml``.
DATASET_PARAMS_FILE = "params.yaml"
#: The file types a dataset version may have (``<version>.<ext>``).
TABLE_EXTENSIONS = ("csv", "parquet")

_VERSION_NUMBER = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class ResolvedDataset:
    """One dataset version as the project holds it at a revision.

    Attributes:
        name: the dataset (its folder under ``data/``).
        version: the version name, e.g. ``v2``.
        path: the DVC-tracked file inside the project, e.g. ``data/penguins/v1.csv``.
        md5: the content hash in its pointer.
        spec: the dataset's spec, read at the same revision.
        params_override: ``data/<name>/params.yaml`` as a mapping; ``None`` when absent.
    """

    name: str
    version: str
    path: str
    md5: str
    spec: DatasetSpec
    params_override: dict[str, Any] | None


@contextmanager
def open_project(
    repo: str, rev: str | None, remote_url: str, endpoint_url: str | None = None
) -> Iterator[Any]:
    """The DVC project ``repo`` (a path or a git URL) at ``rev`` as a ``DVCFileSystem``.

    Raises:
        DatasetVersionError: the project or the revision cannot be opened.
    """
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    try:
        fs = DVCFileSystem(repo, rev=rev, config=remote_config(remote_url, endpoint_url))
    except (RevError, DvcException) as e:
        raise DatasetVersionError(
            f"cannot open DVC project {repo!r} at revision {rev!r}: {e}; check SLIPWAY_DVC_REPO "
            "and the dataset_rev pipeline parameter"
        ) from e
    try:
        yield fs
    finally:
        fs.close()  # a git URL is cloned to a temporary folder


def dataset_versions(fs: Any, name: str) -> dict[str, tuple[str, str]]:
    """The DVC-tracked versions of dataset ``name``: ``{version: (path, md5)}``, oldest first."""
    folder = f"data/{name}"
    if not fs.isdir(folder):
        return {}
    found: dict[str, tuple[str, str]] = {}
    for entry in fs.ls(folder, detail=True):
        md5 = (entry.get("dvc_info") or {}).get("md5")
        file = PurePosixPath(entry["name"])
        if entry.get("type") != "file" or not md5 or file.suffix[1:] not in TABLE_EXTENSIONS:
            continue
        found[file.stem] = (file.as_posix(), str(md5))
    return {v: found[v] for v in sort_versions(found)}


def available_datasets(fs: Any) -> dict[str, list[str]]:
    """Every dataset folder under ``data/`` that has a spec or a version: ``{name: versions}``."""
    if not fs.isdir("data"):
        return {}
    out = {}
    for folder in sorted(fs.ls("data", detail=False)):
        name = PurePosixPath(folder).name
        versions = list(dataset_versions(fs, name))
        if versions or fs.isfile(f"data/{name}/{SPEC_FILE}"):
            out[name] = versions
    return out


def sort_versions(versions: Iterator[str] | list[str] | dict) -> list[str]:
    """Versions oldest first: ``v<N>`` by number (``v2`` before ``v10``), then other names."""

    def key(version: str) -> tuple[int, int, str]:
        m = _VERSION_NUMBER.match(version)
        return (0, int(m.group(1)), "") if m else (1, 0, version)

    return sorted(versions, key=key)


def latest_version(versions: list[str]) -> str:
    """The version a run uses when none is named: the newest (``v<N>`` with the highest N)."""
    return sort_versions(versions)[-1]


def resolve_dataset(fs: Any, name: str, version: str | None, where: str) -> ResolvedDataset:
    """Find ``version`` (default: the latest) of dataset ``name`` and read its spec and params.

    Args:
        fs: :func:`open_project`'s file system.
        name: the dataset.
        version: the version; ``None`` = :func:`latest_version`.
        where: the project and revision, for messages (e.g. ``'.' at revision 'HEAD'``).

    Raises:
        DatasetVersionError: unknown dataset, or unknown version (the message lists the known).
        DatasetSpecError: the spec is missing, invalid, or names another dataset.
        ConfigError: ``data/<name>/params.yaml`` is not a YAML mapping.
    """
    versions = dataset_versions(fs, name)
    if not versions:
        known = available_datasets(fs)
        shown = "; ".join(f"{n} ({', '.join(v) or 'no versions'})" for n, v in known.items())
        raise DatasetVersionError(
            f"unknown dataset {name!r}: {where} has no DVC-tracked version under data/{name}/ "
            f"(datasets there: {shown or 'none'}); bring it in with `slipway data add` and "
            "commit its pointer"
        )
    version = version or latest_version(list(versions))
    if version not in versions:
        raise DatasetVersionError(
            f"unknown dataset version {version!r}; known versions: {', '.join(versions)} "
            f"(dataset {name} in {where}, see data/{name}/)"
        )
    path, md5 = versions[version]
    return ResolvedDataset(
        name=name,
        version=version,
        path=path,
        md5=md5,
        spec=read_spec(fs, name, where),
        params_override=read_params_override(fs, name, where),
    )


def read_spec(fs: Any, name: str, where: str) -> DatasetSpec:
    """``data/<name>/dataset.yaml`` from the project, validated, and naming ``name``.

    Raises:
        DatasetSpecError: missing, not YAML, invalid, or its ``name`` is another dataset's.
    """
    source = f"data/{name}/{SPEC_FILE}"
    if not fs.isfile(source):
        raise DatasetSpecError(
            f"dataset {name} has no spec {source} in {where}; draft one with `slipway data "
            "infer-spec`, review it and commit it"
        )
    try:
        raw = yaml.safe_load(fs.cat_file(source).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DatasetSpecError(f"{source} in {where} is not valid YAML ({e}); fix it") from e
    spec = parse_dataset_spec(raw, source)
    if spec.name != name:
        raise DatasetSpecError(
            f"{source} names dataset {spec.name!r}, not {name!r}; set name: {name} in the spec"
        )
    return spec


def read_params_override(fs: Any, name: str, where: str) -> dict[str, Any] | None:
    """``data/<name>/params.yaml`` as a mapping, or ``None`` when the dataset has none.

    Raises:
        ConfigError: the file is not YAML or not a mapping.
    """
    source = f"data/{name}/{DATASET_PARAMS_FILE}"
    if not fs.isfile(source):
        return None
    try:
        raw = yaml.safe_load(fs.cat_file(source).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source} in {where} is not valid YAML ({e}); fix it") from e
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source} in {where} must be a mapping of params.yaml sections (search, evaluate), "
            f"got {type(raw).__name__}"
        )
    return raw


#: Mappings a dataset's params file replaces whole: its thresholds are limits on its own task's
#: metrics, so the project's (another task's, often) must not leak in beside them.
REPLACED_WHOLE = frozenset({("evaluate", "thresholds")})


def merge_params(
    base: dict[str, Any], override: dict[str, Any] | None, _at: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``override`` deep-merged over ``base``: mappings merge key by key, anything else replaces.

    Lists replace whole (a dataset's ``search.candidates`` is its own list, not appended), and so
    do the mappings in :data:`REPLACED_WHOLE` (``evaluate.thresholds``).
    """
    merged = dict(base)
    for key, value in (override or {}).items():
        at = (*_at, key)
        if (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and at not in REPLACED_WHOLE
        ):
            merged[key] = merge_params(merged[key], value, at)
        else:
            merged[key] = value
    return merged
