"""``slipway deploy``: pin a model version in an overlay and roll it out.

Validate everything first (version code, overlay, the package in the model store and on EFS, the
registry version), render the overlay before and after on a scratch copy and show the diff; then
write ``overlays/<env>/model-version.yaml`` with :func:`slipway.release.overlay.set_model_version`.
When a kube context is configured the overlay is applied (``kubectl apply -k``), the rollout
awaited and read back, and the registry alias, the champion marker in the model store and the
audit trail follow (:func:`slipway.release.sync.sync_registry`). Without one, only the file
is written.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.errors import KubectlError, RolloutError
from slipway.packaging import MANIFEST, open_model_store
from slipway.registry import CHAMPION
from slipway.release.audit import ReleaseEvent
from slipway.release.kubectl import Kubectl, ServedVersion, parse_duration, served_version
from slipway.release.names import DEPLOYMENT, status_command
from slipway.release.overlay import read_model_version, render_overlay, set_model_version
from slipway.release.sync import (
    RegistrySync,
    find_registry_version,
    overlay_dir,
    resume_command,
    sync_registry,
)
from slipway.versions import VersionCode

__all__ = ["DeployRequest", "DeployResult", "check_version_available", "deploy_version"]


@dataclass(frozen=True)
class DeployRequest:
    """What ``slipway deploy`` was asked to do; checked when it is built.

    Attributes:
        version: The version to pin (text from a caller is parsed here, once).
        env: Overlay, ``dev`` or ``prod``.
        manifests_root: The folder holding ``base/`` and ``overlays/``.
        actor: Who, for the audit trail.
        cause: The change cause shown by ``kubectl rollout history`` (default
            ``deploy model <version>``).
        dry_run: Render the diff only; change nothing.
        timeout: How long to wait for the rollout (``90s``, ``5m``, ``1h``).

    Raises:
        ConfigError: the version code or the timeout is not valid; nothing was changed.
    """

    version: VersionCode
    env: str
    manifests_root: Path
    actor: str
    cause: str | None = None
    dry_run: bool = False
    timeout: str = "5m"

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", VersionCode.parse(self.version))
        parse_duration(self.timeout)
        if self.cause is None:
            object.__setattr__(self, "cause", f"deploy model {self.version}")


@dataclass(frozen=True)
class DeployResult:
    """What :func:`deploy_version` did.

    Attributes:
        from_version: The version pinned (or served) before; ``None`` on a first deploy.
        to_version: The version deployed.
        diff: Unified diff of the rendered overlay, before and after.
        overlay_file: The overlay file written; ``None`` on a dry run.
        context: The kube context applied to; ``None`` when only the file was written.
        served: What the Deployment serves after the rollout (applied deploys only).
        sync: What the registry sync did (applied deploys only).
    """

    from_version: VersionCode | None
    to_version: VersionCode
    diff: str
    overlay_file: Path | None
    context: str | None
    served: ServedVersion | None = None
    sync: RegistrySync | None = None


def check_version_available(settings: Settings, version: VersionCode) -> None:
    """Refuse a version whose package is not in the model store (and on EFS, when mounted).

    Raises:
        RolloutError: the package is missing; the message names the version and the fix.
    """
    name = settings.model_name
    store = open_model_store(settings)
    if not store.exists(name, version):
        known = store.list_versions(name)[-5:]
        raise RolloutError(
            f"model version {version} is not in the model store {settings.model_store_url} "
            f"(known: {', '.join(known) or 'none'}): promote it with the training pipeline "
            "(`slipway run`) or deploy one of the known versions"
        )
    efs = settings.efs_root
    if efs is not None and efs.is_dir() and not (efs / name / version / MANIFEST).is_file():
        raise RolloutError(
            f"model version {version} is in the store but not on EFS at {efs / name / version}: "
            "wait for the efs-sync Lambda to copy it (see docs/aws.md), then deploy again"
        )


def _render_diff(request: DeployRequest, cause: str) -> tuple[VersionCode, str]:
    """(version pinned before, unified diff of the rendered overlay), on a scratch copy."""
    env, version, manifests_root = request.env, request.version, Path(request.manifests_root)
    before = render_overlay(overlay_dir(manifests_root, env))
    with tempfile.TemporaryDirectory(prefix="slipway-deploy-") as tmp:
        copy = Path(shutil.copytree(manifests_root, Path(tmp) / "manifests", symlinks=True))
        set_model_version(copy / "overlays" / env, version, cause)
        after = render_overlay(copy / "overlays" / env)
    old = read_model_version(before)
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"overlays/{env} ({old})",
            tofile=f"overlays/{env} ({version})",
        )
    )
    return old, diff


def deploy_version(
    settings: Settings, request: DeployRequest, *, kubectl: Kubectl, client: Any = None
) -> DeployResult:
    """Pin ``request.version`` in ``overlays/<env>/model-version.yaml``; apply it to a cluster.

    Validates everything first (overlay, package in the store and on EFS, registry version);
    a dry run stops after rendering the diff. Without a kube context only the file is
    written. With one: ``kubectl apply -k``, wait for the rollout, read back the served version,
    then move ``champion``, rewrite the store's champion marker and record the deploy.

    Args:
        settings: Model name, registry, store and namespace.
        request: What to deploy, where, and who asks.
        kubectl: The runner of kubectl commands.
        client: An MLflow client (default: one for ``settings.tracking_uri``).

    Returns:
        What was done.

    Raises:
        ConfigError, RolloutError, RegistryError, KubectlError: as described by the message;
            a ``RolloutError`` after the apply says what state is left and how to finish.
    """
    version, env = request.version, request.env
    cause = request.cause or f"deploy model {version}"
    overlay = overlay_dir(request.manifests_root, env)
    check_version_available(settings, version)
    if client is None:
        from slipway.registry import get_client

        client = get_client(settings.tracking_uri)
    # found once here (validation before any change) and handed to sync_registry below
    registered = find_registry_version(client, settings.model_name, version)
    pinned, diff = _render_diff(request, cause)
    if request.dry_run:
        return DeployResult(pinned, version, diff, None, None)
    context = kubectl.current_context()
    from_version: VersionCode | None = pinned
    if context is not None:
        live = kubectl.find_deployment()
        from_version = served_version(live).version if live is not None else None  # first deploy
    path = set_model_version(overlay, version, cause)
    if context is None:
        return DeployResult(from_version, version, diff, path, None)
    resume = resume_command(env, from_version, cause, "deploy")
    try:
        kubectl.apply_kustomization(overlay)
    except KubectlError as e:
        raise RolloutError(
            f"{path} now pins {version}, but applying it to context {context} failed: {e}. "
            f"The registry is untouched; fix the cause and run `slipway deploy --version "
            f"{version} --env {env}` again, or restore the file with `git checkout -- {path}`"
        ) from e
    untouched = f"The registry alias {CHAMPION!r} and the audit trail are untouched"
    status = status_command(kubectl.namespace)
    try:
        kubectl.rollout_status(timeout=request.timeout)
    except KubectlError as e:
        raise RolloutError(
            f"{version} was applied to context {context}, but the rollout did not finish: {e}. "
            f"{untouched}. Watch `{status}`; once it has rolled out run `{resume}`; to abandon "
            f"it run `slipway rollback --env {env}`"
        ) from e
    try:
        served = served_version(kubectl.get_deployment())
    except KubectlError as e:
        raise RolloutError(
            f"{version} was applied to context {context} and rolled out, but reading back what "
            f"the Deployment serves failed: {e}. {untouched}: check `kubectl -n "
            f"{kubectl.namespace} get deployment {DEPLOYMENT} -o yaml`; once it pins {version} "
            f"run `{resume}`"
        ) from e
    if served.version != version:
        raise RolloutError(
            f"after applying {version} the Deployment serves {served.version} (another deploy "
            f"meanwhile?); the registry is untouched: check `{status}` and deploy again"
        )
    event = ReleaseEvent(
        action="deploy",
        served=version,
        from_version=from_version,
        reason=cause,
        revision=served.revision,
        env=env,
        context=context,
        actor=request.actor,
    )
    sync = sync_registry(client, settings, event, resume=resume, target=registered)
    return DeployResult(from_version, version, diff, path, context, served, sync)
