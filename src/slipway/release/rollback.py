"""Roll the model server back, keeping cluster, registry, audit trail and overlay in step.

The served version lives in the model server's pod template (see :mod:`slipway.release.overlay`),
so a rollback is ``kubectl rollout undo`` (and a deploy, :mod:`slipway.release.deploy`, is "pin the
version in the overlay and ``kubectl apply -k``"). After the cluster has rolled out,
:mod:`slipway.release.sync` moves the ``champion`` alias, rewrites the champion marker and writes
the audit record. Every step is checked; a failure part-way raises :class:`RolloutError` saying
what state is left and the one command that finishes the job (``slipway rollback
--sync-registry-only``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.errors import ConfigError, KubectlError, RegistryError, RolloutError, SlipwayError
from slipway.registry import CHAMPION
from slipway.release.audit import (
    ACTIONS,
    ReleaseEvent,
)
from slipway.release.kubectl import Kubectl, ServedVersion, parse_duration, served_version
from slipway.release.names import DEPLOYMENT, status_command
from slipway.release.overlay import set_model_version
from slipway.release.sync import (
    RegistrySync,
    overlay_dir,
    resume_command,
    sync_registry,
)
from slipway.versions import VersionCode

__all__ = ["RollbackRequest", "RollbackResult", "rollback_deployment"]


@dataclass(frozen=True)
class RollbackRequest:
    """What ``slipway rollback`` was asked to do; checked when it is built.

    Attributes:
        env: Overlay, ``dev`` or ``prod``.
        manifests_root: The folder holding ``base/`` and ``overlays/``; ``None`` when there is
            no checkout to pin the served version in (``slipway guard`` in the cluster: the
            deploy pipeline's next ``slipway deploy`` pins the version it deploys anyway).
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
    manifests_root: Path | None
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
        overlay_file: The overlay file that now pins the served version; ``None`` without
            ``request.manifests_root``.
    """

    action: str
    from_version: VersionCode | None
    served: ServedVersion
    context: str
    sync: RegistrySync
    overlay_file: Path | None


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
        kubectl: The runner of kubectl commands, or any object with the same methods
            (``slipway.guard`` passes its Kubernetes API client).
        client: An MLflow client (default: one for ``settings.tracking_uri``).

    Returns:
        What was done and what is served now.

    Raises:
        ConfigError, RegistryError, KubectlError: before any change; the message says so.
        RolloutError: after the undo; says what state is left and the command that finishes.
    """
    if request.manifests_root is not None:
        overlay: Path | None = overlay_dir(request.manifests_root, request.env)
    else:
        overlay = None
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
    if overlay is None:
        return RollbackResult(action, from_version, served, context, sync, None)
    try:
        path = _pin_served(overlay, served)
    except (SlipwayError, OSError) as e:
        raise RolloutError(
            f"cluster, registry and audit trail agree on {served.version}, but the overlay file "
            f"in {overlay} was not updated ({e}): run `{resume}`, or the next `kubectl apply -k` "
            "redeploys the old version"
        ) from e
    return RollbackResult(action, from_version, served, context, sync, path)


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
