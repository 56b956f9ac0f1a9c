"""Roll the model server back, keeping cluster, registry, audit trail and overlay in step.

The served version lives in the model server's pod template (see :mod:`slipway.release.overlay`), so a
rollback is ``kubectl rollout undo`` (and a deploy, :mod:`slipway.release.deploy`, is "pin the version in
the overlay and ``kubectl apply -k``"). After the cluster has rolled out, the registry alias
``champion`` is moved to the served version, the champion marker beside the packages in the model
store (``<model>/champion.json``, which efs-sync retention never deletes) is rewritten to name it,
and an audit record is written (:mod:`slipway.release.audit`).
Every step is checked; a failure part-way raises :class:`RolloutError` saying what state is left
and the one command that finishes the job (``slipway rollback --sync-registry-only``, which brings registry, champion
marker, audit trail and overlay file in line with what the cluster serves).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.errors import ConfigError, KubectlError, RegistryError, RolloutError, SlipwayError
from slipway.packaging import open_model_store
from slipway.registry import CHAMPION, TAG_VERSION_CODE, get_alias_version, move_alias
from slipway.release.audit import (
    ACTIONS,
    AuditRecord,
    ReleaseEvent,
    append_audit_record,
    new_record,
    read_audit_trail,
)
from slipway.release.kubectl import Kubectl, ServedVersion, parse_duration, served_version
from slipway.release.names import DEPLOYMENT, status_command
from slipway.release.overlay import set_model_version
from slipway.versions import VersionCode

__all__ = [
    "ENVS",
    "RegistrySync",
    "RollbackRequest",
    "RollbackResult",
    "find_registry_version",
    "overlay_dir",
    "resume_command",
    "rollback_deployment",
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


@dataclass(frozen=True)
class RollbackRequest:
    """What ``slipway rollback`` was asked to do; checked when it is built.

    Attributes:
        env: Overlay, ``dev`` or ``prod``.
        manifests_root: The folder holding ``base/`` and ``overlays/``.
        actor: Who, for the audit trail.
        reason: Why, for the audit trail.
        to_revision: The revision to return to (default: the previous one).
        timeout: How long to wait for the rollout (``90s``, ``5m``, ``1h``).
        sync_only: Leave the cluster alone; bring registry, marker, audit and overlay in line.
        from_version: With ``sync_only``: the version served before (default: the champion).
        record_as: With ``sync_only``: record the change as ``sync``, ``rollback`` or ``deploy``.

    Raises:
        ConfigError: a value is out of range; nothing was changed.
    """

    env: str
    manifests_root: Path
    actor: str
    reason: str
    to_revision: int | None = None
    timeout: str = "5m"
    sync_only: bool = False
    from_version: VersionCode | None = None
    record_as: str = "sync"

    def __post_init__(self) -> None:
        if self.to_revision is not None and (self.sync_only or self.to_revision < 1):
            raise ConfigError(
                f"--to-revision {self.to_revision} needs a revision >= 1 and no sync-only"
            )
        if self.from_version is not None:  # text from a caller is parsed here, once
            object.__setattr__(self, "from_version", VersionCode.parse(self.from_version))
        parse_duration(self.timeout)
        if self.record_as not in ACTIONS:
            raise ConfigError(f"--record-as {self.record_as!r} is not one of {', '.join(ACTIONS)}")


@dataclass(frozen=True)
class RollbackResult:
    """What :func:`rollback_deployment` did.

    Attributes:
        action: ``rollback``, or what ``--sync-registry-only`` recorded (``--record-as``).
        from_version: The version served before.
        served: What the Deployment serves now.
        context: The kubeconfig context.
        sync: What the registry sync did.
        overlay_file: The overlay file that now pins the served version.
    """

    action: str
    from_version: VersionCode | None
    served: ServedVersion
    context: str
    sync: RegistrySync
    overlay_file: Path


def rollback_deployment(
    settings: Settings, request: RollbackRequest, *, kubectl: Kubectl, client: Any = None
) -> RollbackResult:
    """Roll the model server back one revision (or to ``request.to_revision``) and make all agree.

    Steps, each checked: the registry is reachable; ``kubectl rollout undo``; ``kubectl rollout
    status`` (waits up to ``request.timeout``); read back the version the pod template now pins;
    move ``champion`` to it, rewrite the store's champion marker, tag both registry versions,
    append the audit record; pin the served version in the overlay file so that the next
    ``kubectl apply -k`` does not undo the rollback.
    With ``request.sync_only`` the cluster is left alone and only the last three steps run,
    recording the change as ``request.record_as`` (``sync``, or ``rollback`` / ``deploy`` when
    finishing one of those that stopped part-way) from ``request.from_version`` (default: the
    current champion).

    Args:
        settings: Model name, registry, store and namespace.
        request: What to do.
        kubectl: The runner of kubectl commands.
        client: An MLflow client (default: one for ``settings.tracking_uri``).

    Returns:
        What was done and what is served now.

    Raises:
        ConfigError, RegistryError, KubectlError: before any change; the message says so.
        RolloutError: after the undo; says what state is left and the command that finishes.
    """
    overlay = overlay_dir(request.manifests_root, request.env)
    if client is None:
        from slipway.registry import get_client

        client = get_client(settings.tracking_uri)
    name = settings.model_name
    _check_registered(client, name)
    context = kubectl.current_context()
    if context is None:
        raise RolloutError(
            "no kubectl context is configured (`kubectl config current-context` failed), so "
            "there is no Deployment to roll back; nothing was changed: select the cluster with "
            "`kubectl config use-context <name>` (for EKS, `aws eks update-kubeconfig`)"
        )
    before = served_version(kubectl.get_deployment())
    from_version = request.from_version
    if request.sync_only:
        served, action = before, request.record_as
        if from_version is None:
            from slipway.registry import champion_version_code

            champion = champion_version_code(client, name)
            from_version = champion[1] if champion else None
    else:
        resume = resume_command(request.env, before.version, request.reason, "rollback")
        served = _undo(kubectl, before, request, context, resume)
        action, from_version = "rollback", before.version
    resume = resume_command(request.env, from_version, request.reason, action)
    event = ReleaseEvent(
        action=action,
        served=served.version,
        from_version=from_version,
        reason=request.reason,
        revision=served.revision,
        env=request.env,
        context=context,
        actor=request.actor,
    )
    sync = sync_registry(client, settings, event, resume=resume)
    try:
        path = _pin_served(overlay, served)
    except (SlipwayError, OSError) as e:
        raise RolloutError(
            f"cluster, registry and audit trail agree on {served.version}, but the overlay file "
            f"in {overlay} was not updated ({e}): run `{resume}`, or the next `kubectl apply -k` "
            "redeploys the old version"
        ) from e
    return RollbackResult(action, from_version, served, context, sync, path)


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


def _undo(
    kubectl: Kubectl, before: ServedVersion, request: RollbackRequest, context: str, resume: str
) -> ServedVersion:
    try:
        kubectl.rollout_undo(to_revision=request.to_revision)
    except KubectlError as e:
        raise KubectlError(
            f"{e}. Nothing was changed: the Deployment still serves {before.version}"
        ) from e
    try:
        kubectl.rollout_status(timeout=request.timeout)
    except KubectlError as e:
        try:
            target = served_version(kubectl.get_deployment()).version
        except KubectlError:
            target = "the previous revision's version"
        raise RolloutError(
            f"`kubectl rollout undo` on context {context} switched the Deployment from "
            f"{before.version} to {target}, but the rollout did not finish: {e}. The registry "
            f"alias {CHAMPION!r} still points at the old champion and no audit record was "
            f"written. Watch `{status_command(kubectl.namespace)}`; once it has rolled out run "
            f"`{resume}`"
        ) from e
    try:
        return served_version(kubectl.get_deployment())
    except KubectlError as e:
        raise RolloutError(
            f"`kubectl rollout undo` on context {context} rolled out, but reading back what the "
            f"Deployment serves failed: {e}. The registry alias {CHAMPION!r} and the audit trail "
            f"are untouched: check `kubectl -n {kubectl.namespace} get deployment {DEPLOYMENT} "
            f"-o yaml`; once its pod template pins one version run `{resume}`"
        ) from e


def _pin_served(overlay: Path, served: ServedVersion) -> Path:
    # the live template's own cause, so that re-applying the overlay leaves the template as is
    try:
        return set_model_version(overlay, served.version, served.cause or "")
    except ConfigError:
        return set_model_version(overlay, served.version, f"deploy model {served.version}")


def _check_registered(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as e:
        raise RegistryError(
            f"registered model {name!r} is not readable in the registry ({e.error_code}): check "
            "SLIPWAY_TRACKING_URI and SLIPWAY_MODEL_NAME; nothing was changed"
        ) from e
