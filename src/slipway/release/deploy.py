"""``slipway deploy``: pin a model version in an overlay and roll it out.

Validate everything first (version code, overlay, the package in the model store and on EFS, the
registry version), render the overlay before and after on a scratch copy and show the diff; then
write ``overlays/<env>/model-version.yaml`` with :func:`slipway.release.overlay.set_model_version`.
When a kube context is configured the overlay is applied (``kubectl apply -k``), the rollout
awaited and read back, and the registry alias, the champion marker in the model store and the
audit trail follow (:func:`slipway.release.rollback.sync_registry`). Without one, only the file is written.
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
from slipway.release.kubectl import Kubectl, ServedVersion, parse_duration, served_version
from slipway.release.overlay import read_model_version, render_overlay, set_model_version
from slipway.release.rollback import (
    STATUS,
    RegistrySync,
    find_registry_version,
    overlay_dir,
    resume_command,
    sync_registry,
)
from slipway.versions import parse_version_code

__all__ = ["DeployResult", "check_version_available", "deploy_version"]


@dataclass(frozen=True)
class DeployResult:
    from_version: str | None
    to_version: str
    diff: str
    overlay_file: Path | None  # None on a dry run
    context: str | None  # kube context applied to; None when only the file was written
    served: ServedVersion | None = None
    sync: RegistrySync | None = None


def check_version_available(settings: Settings, version: str) -> None:
    """Refuse a version whose package is not in the model store (and on EFS, when mounted).

    Raises:
        RolloutError: the package is missing; the message names the version and the fix.
    """
    name = settings.model_name
    store = open_model_store(
        settings.model_store_url, settings.aws_endpoint_url, settings.aws_region
    )
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


def _render_diff(manifests_root: Path, env: str, version: str, cause: str) -> tuple[str, str]:
    """(version pinned before, unified diff of the rendered overlay), on a scratch copy."""
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
    settings: Settings,
    version: str,
    *,
    env: str,
    manifests_root: Path,
    actor: str,
    kubectl: Kubectl,
    cause: str | None = None,
    dry_run: bool = False,
    timeout: str = "5m",
    client: Any = None,
) -> DeployResult:
    """Pin ``version`` in ``overlays/<env>/model-version.yaml`` and apply it when a cluster is set.

    Validates everything first (version code, overlay, package in the store and on EFS, registry
    version); a dry run stops after rendering the diff. Without a kube context only the file is
    written. With one: ``kubectl apply -k``, wait for the rollout, read back the served version,
    then move ``champion``, rewrite the store's champion marker and record the deploy.

    Raises:
        ConfigError, RolloutError, RegistryError, KubectlError: as described by the message;
            a ``RolloutError`` after the apply says what state is left and how to finish.
    """
    parse_version_code(version)
    parse_duration(timeout)
    overlay = overlay_dir(manifests_root, env)
    cause = cause or f"deploy model {version}"
    check_version_available(settings, version)
    if client is None:
        from slipway.registry import get_client

        client = get_client(settings.tracking_uri)
    find_registry_version(client, settings.model_name, version)
    pinned, diff = _render_diff(Path(manifests_root), env, version, cause)
    if dry_run:
        return DeployResult(pinned, version, diff, None, None)
    context = kubectl.current_context()
    from_version = pinned
    if context is not None:
        try:
            from_version = served_version(kubectl.get_deployment()).version
        except KubectlError as e:
            if "NotFound" not in str(e) and "not found" not in str(e):
                raise
            from_version = None  # first deploy to this cluster
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
    try:
        kubectl.rollout_status(timeout=timeout)
    except KubectlError as e:
        raise RolloutError(
            f"{version} was applied to context {context}, but the rollout did not finish: {e}. "
            f"{untouched}. Watch `{STATUS}`; once it has rolled out run `{resume}`; to abandon "
            f"it run `slipway rollback --env {env}`"
        ) from e
    try:
        served = served_version(kubectl.get_deployment())
    except KubectlError as e:
        raise RolloutError(
            f"{version} was applied to context {context} and rolled out, but reading back what "
            f"the Deployment serves failed: {e}. {untouched}: check `kubectl -n slipway get "
            f"deployment slipway-server -o yaml`; once it pins {version} run `{resume}`"
        ) from e
    if served.version != version:
        raise RolloutError(
            f"after applying {version} the Deployment serves {served.version} (another deploy "
            f"meanwhile?); the registry is untouched: check `{STATUS}` and deploy again"
        )
    sync = sync_registry(
        client,
        settings.model_name,
        settings=settings,
        action="deploy",
        served=version,
        from_version=from_version,
        reason=cause,
        revision=served.revision,
        env=env,
        context=context,
        actor=actor,
        resume=resume,
    )
    return DeployResult(from_version, version, diff, path, context, served, sync)
