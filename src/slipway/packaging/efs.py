"""Model packages on the EFS mount: verified copy, atomic publish, retention, champion marker.

The ``efs-sync`` Lambda (:mod:`slipway.packaging.efs_sync`) and the embedded default (promotion calling
:func:`publish_champion` on a local store) share this code, so ``make run`` fills a local
"EFS" folder exactly the way the Lambda fills ``/mnt/models``::

    <efs_root>/<model>/<version-code>/model.skops
    <efs_root>/<model>/<version-code>/manifest.json

A package is read from the store, every file is checked against the SHA-256 and size in the
manifest, written into a temporary folder beside its final place (same file system) and renamed
into place: a reader sees no version or a complete, verified one. A version already on EFS is
never replaced: the same manifest means "already synced", another one is an error.

Retention keeps the newest ``efs_keep_versions`` versions (never fewer than the Deployment's
``revisionHistoryLimit``, so every rollback target stays) and the champion named by the store's
``<model>/champion.json`` marker. Without a readable marker nothing is deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.errors import ModelPackageError, SlipwayError, VersionExistsError
from slipway.packaging.package import parse_manifest, verify_file
from slipway.packaging.store import MANIFEST, LocalModelStore, ModelStore
from slipway.versions import VersionCode, is_version_code

CHAMPION_MARKER = "champion.json"
REVISION_HISTORY_LIMIT = 10  # manifests/base/deployment.yaml: rollback depth kept on EFS
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
STALE_SECONDS = 3600  # leftovers of a killed copy (Lambda timeout) older than this are removed
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class SyncResult:
    """What :func:`sync_from_store` did.

    Attributes:
        model: The model name.
        version: The version code copied.
        path: Its folder on EFS.
        created: ``False`` when the same package was already on EFS.
        champion: The champion named by the marker; ``None`` (no readable marker) skips
            retention.
        pruned: The versions retention deleted.
    """

    model: str
    version: str
    path: str
    created: bool
    champion: str | None
    pruned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as a dict (the Lambda's idempotency record; codes are ``str``)."""
        return asdict(self)


def write_file(path: Path, data: bytes) -> None:
    """Create ``path`` (never overwrite), write ``data`` and flush it to the file system."""
    with path.open("xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o644)


def _check_names(model: str, version: VersionCode | str) -> VersionCode:
    if not _MODEL_NAME.fullmatch(model):
        raise ModelPackageError(f"{model!r} is not a model name (expected {_MODEL_NAME.pattern})")
    return VersionCode.parse(version)


def copy_package(
    store: ModelStore, model: str, version: VersionCode | str, manifest_bytes: bytes, efs_root: Path
) -> tuple[Path, bool]:
    """Verify and copy one package from ``store`` to ``<efs_root>/<model>/<version>/``.

    Returns:
        ``(final path, created)``; ``created`` is ``False`` when the same package was there.

    Raises:
        ModelPackageError: the manifest or a file is malformed, truncated or tampered with;
            nothing is left at the final path.
        VersionExistsError: EFS holds this version with a different manifest.
        ConfigError: ``version`` is not a version code.
    """
    version = _check_names(model, version)
    where = store.package_uri(model, version)
    manifest = parse_manifest(manifest_bytes, where)
    if (manifest.get("model_name"), manifest.get("version_code")) != (model, version):
        raise ModelPackageError(
            f"{where}/{MANIFEST} describes {manifest.get('model_name')} "
            f"{manifest.get('version_code')}, not {model} {version}: refusing to copy it"
        )
    names = sorted(manifest.get("files") or {})
    if not names or not all(_FILE_NAME.fullmatch(n) and n != MANIFEST for n in names):
        raise ModelPackageError(f"{where}/{MANIFEST} lists no valid files: {names}")
    final = Path(efs_root) / model / version
    if final.exists():
        return final, _same_package(final, manifest_bytes, model, version)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{version}.", dir=final.parent))
    try:
        for name in names:
            data = store.read(model, version, name)
            verify_file(manifest, name, data, where)
            write_file(tmp / name, data)
        write_file(tmp / MANIFEST, manifest_bytes)
        os.chmod(tmp, 0o755)  # noqa: S103 - serving pods (another uid on some setups) read it
        try:
            os.rename(tmp, final)  # atomic on one file system; fails onto a non-empty folder
        except OSError:
            if final.exists():  # a concurrent copy won the race
                return final, _same_package(final, manifest_bytes, model, version)
            raise
        _fsync_dir(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final, True


def _same_package(final: Path, manifest_bytes: bytes, model: str, version: str) -> bool:
    try:
        existing = (final / MANIFEST).read_bytes()
    except FileNotFoundError:
        existing = b""
    if existing != manifest_bytes:
        raise VersionExistsError(
            f"EFS already holds model {model} version {version} at {final} with a different "
            "manifest; versions are immutable: investigate, do not overwrite"
        )
    return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_retention(efs_root: Path, model: str, keep: int, champion: str | None) -> list[str]:
    """Delete versions of ``model`` beyond the newest ``keep``, never the champion.

    ``keep`` is raised to :data:`REVISION_HISTORY_LIMIT` if smaller. With ``champion=None``
    (marker missing or unreadable) nothing is deleted: retention must never guess.

    Returns:
        The version codes deleted, oldest last.
    """
    base = Path(efs_root) / model
    if not base.is_dir():
        return []
    _remove_stale_leftovers(base)
    if champion is None:
        return []
    versions = sorted(
        (
            VersionCode.parse(p.name)
            for p in base.iterdir()
            if p.is_dir() and is_version_code(p.name)
        ),
        key=lambda code: code.registry_version,
        reverse=True,
    )
    doomed = [v for v in versions[max(keep, REVISION_HISTORY_LIMIT) :] if v != champion]
    removed = []
    for version in doomed:
        # rename first: a reader never sees a half-deleted version under its real name
        trash = base / f"{TRASH_PREFIX}{version}.{uuid.uuid4().hex[:8]}"
        try:
            os.rename(base / version, trash)
        except FileNotFoundError:
            continue  # a concurrent sync pruned it first: its copy already succeeded, so does ours
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(version)
    return removed


def _remove_stale_leftovers(base: Path) -> None:
    cutoff = time.time() - STALE_SECONDS
    for path in base.iterdir():
        if path.name.startswith((TMP_PREFIX, TRASH_PREFIX)) and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)


def write_champion_marker(
    store: ModelStore, model: str, version: VersionCode | str, registry_version: int | None = None
) -> str:
    """Record ``version`` as ``model``'s champion beside its packages (``<model>/champion.json``).

    Promotion and rollback call this after the registry alias moves; efs-sync retention reads
    it, because the Lambda cannot reach MLflow. Overwriting is the point: it is a pointer.

    Returns:
        Where the marker was written.

    Raises:
        ModelPackageError, ConfigError: the model name or the version code is not valid.
    """
    version = _check_names(model, version)
    body = {
        "model": model,
        "version_code": str(version),
        "registry_version": registry_version,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    return store.put_marker(model, CHAMPION_MARKER, data)


def read_champion_marker(store: ModelStore, model: str) -> VersionCode | None:
    """The champion's version code from the marker, or ``None`` if absent or malformed."""
    data = store.read_marker(model, CHAMPION_MARKER)
    if data is None:
        return None
    try:
        return VersionCode.parse(json.loads(data)["version_code"])
    except (ValueError, KeyError, TypeError, SlipwayError):
        return None


def sync_from_store(
    store: ModelStore,
    model: str,
    version: VersionCode | str,
    settings: Settings,
    manifest: bytes | None = None,
) -> SyncResult:
    """Copy one package to ``settings.efs_root`` (verified, atomic), then apply retention.

    Args:
        store: The model store holding the package.
        model: The model name.
        version: The version code (text is parsed, before anything is read).
        settings: ``efs_root`` and ``efs_keep_versions``.
        manifest: the manifest bytes when the caller already read them (the Lambda reads the
            exact S3 object version named by its event); otherwise read from ``store``.

    Returns:
        What was copied and pruned.

    Raises:
        ModelPackageError: the package fails verification; nothing appears on EFS.
        VersionExistsError: EFS holds this version with a different manifest.
        ConfigError: ``version`` is not a version code.
    """
    version = _check_names(model, version)
    if manifest is None:
        manifest = store.read(model, version, MANIFEST)
    path, created = copy_package(store, model, version, manifest, settings.efs_root)
    try:
        champion = read_champion_marker(store, model)
    except SlipwayError:  # e.g. AccessDenied: never guess which version may be deleted
        champion = None
    pruned = apply_retention(settings.efs_root, model, settings.efs_keep_versions, champion)
    return SyncResult(model, version, str(path), created, champion, pruned)


def publish_champion(
    store: ModelStore,
    model: str,
    version: VersionCode | str,
    registry_version: int,
    settings: Settings,
) -> str | None:
    """After the champion alias moved: write the marker; on a local store also sync to EFS.

    On S3 the bucket notification runs the ``efs-sync`` Lambda instead, so this returns
    ``None`` there; locally it returns the EFS path. Idempotent.
    """
    write_champion_marker(store, model, version, registry_version)
    if isinstance(store, LocalModelStore):
        return sync_from_store(store, model, version, settings).path
    return None
