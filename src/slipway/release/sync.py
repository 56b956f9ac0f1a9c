"""Bring registry, champion marker, audit trail and overlay file in line with what is served.

Deploy and rollback both end here once the cluster has rolled out: the ``champion`` alias moves to
the served version, the champion marker beside the packages (``<model>/champion.json``, which
efs-sync retention never deletes) names it, and an audit record says who, when and why. When a
step fails, :func:`resume_command` is the one command that finishes the job.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.errors import ConfigError, RegistryError, RolloutError
from slipway.packaging import open_model_store
from slipway.registry import CHAMPION, TAG_VERSION_CODE, get_alias_version, move_alias
from slipway.release.audit import (
    AuditRecord,
    ReleaseEvent,
    append_audit_record,
    new_record,
    read_audit_trail,
)
from slipway.release.names import DEPLOYMENT
from slipway.versions import VersionCode

__all__ = [
    "ENVS",
    "RegistrySync",
    "find_registry_version",
    "overlay_dir",
    "resume_command",
    "sync_registry",
]

ENVS = ("dev", "prod")


@dataclass(frozen=True)
class RegistrySync:
    """What :func:`sync_registry` did.

    Attributes:
        alias_before: Registry version ``champion`` pointed at before (``None``: no alias).
        registry_version: Registry version ``champion`` points at now.
        audit_key: Tag key of the audit record; ``None`` when the change was already recorded.
        marker: Where the champion marker was written.
    """

    alias_before: str | None
    registry_version: str
    audit_key: str | None
    marker: str | None = None


def overlay_dir(manifests_root: Path, env: str) -> Path:
    """``<manifests_root>/overlays/<env>``, checked to exist.

    Raises:
        ConfigError: unknown env, or no such overlay folder.
    """
    if env not in ENVS:
        raise ConfigError(f"environment {env!r} is not one of {', '.join(ENVS)}")
    path = Path(manifests_root) / "overlays" / env
    if not (path / "kustomization.yaml").is_file():
        raise ConfigError(
            f"no kustomize overlay at {path}: pass --manifests with the folder holding "
            "base/ and overlays/ (default <project>/manifests)"
        )
    return path


def find_registry_version(client: Any, name: str, version: VersionCode) -> Any:
    """The registry version of model ``name`` whose tag ``version_code`` is ``version``.

    Returns:
        The MLflow ``ModelVersion``.

    Raises:
        RegistryError: none, or more than one.
    """
    found = client.search_model_versions(f"name='{name}' and tags.{TAG_VERSION_CODE}='{version}'")
    if len(found) != 1:
        raise RegistryError(
            f"{len(found)} registry versions of model {name!r} have tag "
            f"{TAG_VERSION_CODE}={version}, expected exactly one: tag the version it was "
            f"promoted as (`MlflowClient().set_model_version_tag({name!r}, <n>, "
            f"{TAG_VERSION_CODE!r}, {str(version)!r})`)"
        )
    return found[0]


def sync_registry(
    client: Any,
    settings: Settings,
    event: ReleaseEvent,
    *,
    resume: str,
    target: Any = None,
) -> RegistrySync:
    """Make the registry, the champion marker and the audit trail agree with what is served.

    Points ``champion`` at ``event.served``, rewrites the champion marker in the model store
    (``settings.model_store_url``), tags a rollback, and appends the audit record.
    Idempotent: an alias already in place is left alone, the marker is a pointer that is simply
    rewritten, and a change already recorded as the newest audit record is not recorded twice,
    so ``resume`` can always be rerun.

    Args:
        client: An MLflow client of the registry.
        settings: Names the model (``model_name``) and its store.
        event: The change that the cluster has made.
        resume: The command that finishes the job, quoted in every error.
        target: The registry version of ``event.served`` when the caller already found it
            (:func:`find_registry_version`); found here otherwise.

    Returns:
        What was changed.

    Raises:
        RolloutError: a registry step failed; the message says which and how to finish.
    """
    name, served = settings.model_name, event.served
    where = f"Deployment {DEPLOYMENT} serves {served}"
    alias_before = None
    try:
        current = get_alias_version(client, name, CHAMPION)
        alias_before = str(current.version) if current is not None else None
        if target is None:
            target = find_registry_version(client, name, served)
        target_version = str(target.version)
        move_alias(client, name, target_version, expected=alias_before)
    except Exception as e:  # registry errors and MLflow/HTTP errors leave the same state
        raise RolloutError(
            f"{where}, but the registry alias {CHAMPION!r} was not moved (it points at version "
            f"{alias_before}) and no audit record was written: {e}. Then run `{resume}`"
        ) from e
    try:
        marker = _write_marker(settings, served, target_version)
    except Exception as e:  # store unreachable, access denied, versioning off, bad name
        raise RolloutError(
            f"{where} and {CHAMPION!r} points at registry version {target_version}, but the "
            f"champion marker in the model store {settings.model_store_url} was not rewritten to "
            f"name {served} (efs-sync retention still protects the version it named before) and "
            f"no audit record was written ({type(e).__name__}: {e}): once the store is reachable "
            f"run `{resume}`"
        ) from e
    try:
        record = new_record(event, registry_version=target_version)
        # a change already recorded (a rerun of `resume`) keeps its tags: they carry the time
        # of the audit record, and tagging always happens before the record is appended
        trail = read_audit_trail(client, name)
        if trail and trail[-1][1].same_change(record):
            key = None
        else:
            withdrawn = event.from_version
            if event.action == "rollback" and withdrawn and withdrawn != served:
                _tag_rollback(client, name, withdrawn, target_version, record)
            key = append_audit_record(client, name, record)
    except Exception as e:
        raise RolloutError(
            f"{where} and {CHAMPION!r} points at registry version {target_version}, but the "
            f"audit record was not written ({type(e).__name__}: {e}): run `{resume}`"
        ) from e
    return RegistrySync(alias_before, target_version, key, marker)


def _write_marker(settings: Settings, served: VersionCode, registry_version: str) -> str:
    from slipway.packaging import write_champion_marker

    store = open_model_store(settings)
    return write_champion_marker(store, settings.model_name, served, int(registry_version))


def _tag_rollback(
    client: Any, name: str, from_version: VersionCode, to_registry: str, record: AuditRecord
) -> None:
    # on the restored version: where it came back from; on the withdrawn one: when and why
    client.set_model_version_tag(name, to_registry, "rolled_back_from", str(from_version))
    client.set_model_version_tag(name, to_registry, "rolled_back_at", record.at)
    try:
        withdrawn = str(find_registry_version(client, name, from_version).version)
    except RegistryError:
        return  # deployed by hand, never registered: the audit record still names it
    client.set_model_version_tag(name, withdrawn, "withdrawn_at", record.at)
    client.set_model_version_tag(name, withdrawn, "withdrawn_reason", record.reason)


def resume_command(env: str, from_version: str | None, reason: str, action: str) -> str:
    """The command that finishes a deploy or rollback whose cluster part is done.

    Args:
        env: Overlay, ``dev`` or ``prod``.
        from_version: The version served before, if known.
        reason: Why, quoted for the shell.
        action: What to record the change as.

    Returns:
        A ``slipway rollback --sync-registry-only …`` command line.
    """
    from_part = f" --from {from_version}" if from_version else ""
    return (
        f"slipway rollback --sync-registry-only --env {env}{from_part} --record-as {action} "
        f"--reason {shlex.quote(reason)}"
    )
