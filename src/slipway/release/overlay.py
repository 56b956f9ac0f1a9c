"""Pin, render and read the model version of the model server's kustomize overlays.

The served model is chosen by the Deployment's POD TEMPLATE (the env var ``MODEL_VERSION``, written
once, beside the ``kubernetes.io/change-cause`` annotation that ``kubectl rollout history`` shows),
so that each model version is its own ReplicaSet revision and ``kubectl rollout undo`` is a model rollback. Each overlay sets the version in one
small strategic-merge patch, ``manifests/overlays/<env>/model-version.yaml``; this module is the
only writer of that file (``slipway deploy --version <code>`` calls :func:`set_model_version`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from slipway.errors import ConfigError
from slipway.release.names import (
    CHANGE_CAUSE_ANNOTATION,
    CONTAINER,
    DEPLOYMENT,
    VERSION_ENV,
)
from slipway.versions import VersionCode

__all__ = [
    "MODEL_VERSION_FILE",
    "read_model_version",
    "render_overlay",
    "set_model_version",
]

MODEL_VERSION_FILE = "model-version.yaml"
_MAX_CAUSE = 256

_HEADER = """\
# The model this environment serves. Written by `slipway deploy --version <code>`
# (slipway.release.overlay.set_model_version); edit by hand only to the same shape.
# The version lives in the POD TEMPLATE (env MODEL_VERSION, once), so each version is its own
# ReplicaSet revision and `kubectl rollout undo deployment/slipway-server` restores the
# previous model.
"""


class _IndentedDumper(yaml.SafeDumper):
    """Indent block sequences under their key, as every other manifest here is written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def set_model_version(overlay_dir: Path, version_code: VersionCode | str, cause: str) -> Path:
    """Pin ``version_code`` in ``overlay_dir/model-version.yaml``, atomically.

    Everything is validated before anything is written; the file is written to a temporary
    name in the same folder and renamed over the old one, so a reader sees the old or the new
    file, never half of one.

    Args:
        overlay_dir: A kustomize overlay of the model server, e.g. ``manifests/overlays/prod``;
            its ``kustomization.yaml`` must list ``model-version.yaml`` under ``patches``.
        version_code: The model version code, ``v<registry version>-<yyyymmdd>-<8 hex>``; text
            is parsed with :meth:`VersionCode.parse` before anything is written.
        cause: The ``kubernetes.io/change-cause`` text shown by ``kubectl rollout history``,
            typically ``f"deploy model {version_code}"``; one line, at most 256 characters.

    Returns:
        The path of the written ``model-version.yaml``.

    Raises:
        ConfigError: the version code, the cause or the overlay is not valid; nothing written.
    """
    code = VersionCode.parse(version_code)
    if not cause.strip() or len(cause) > _MAX_CAUSE or not cause.isprintable():
        raise ConfigError(
            f"change cause {cause!r} is not valid: give one non-empty line of at most "
            f"{_MAX_CAUSE} printable characters, e.g. 'deploy model {code}'"
        )
    overlay_dir = Path(overlay_dir)
    _check_overlay(overlay_dir)
    target = overlay_dir / MODEL_VERSION_FILE
    text = _HEADER + yaml.dump(_version_patch(code, cause), Dumper=_IndentedDumper, sort_keys=False)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{MODEL_VERSION_FILE}.", dir=overlay_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def render_overlay(overlay_dir: Path, kubectl: str = "kubectl") -> str:
    """Render a kustomization with ``kubectl kustomize`` and return the multi-document YAML.

    Args:
        overlay_dir: The folder holding ``kustomization.yaml``.
        kubectl: The kubectl executable (name on PATH or a path).

    Returns:
        The rendered objects, as ``kubectl kustomize`` prints them.

    Raises:
        ConfigError: kubectl is missing, or kustomize rejected the folder (its message
            included).
    """
    exe = shutil.which(kubectl)
    if exe is None:
        raise ConfigError(
            f"kubectl {kubectl!r} not found: install kubectl (>= 1.27, which embeds kustomize "
            "v5) or pass its path"
        )
    proc = subprocess.run(
        [exe, "kustomize", str(overlay_dir)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ConfigError(
            f"kubectl kustomize {overlay_dir} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout


def read_model_version(rendered_yaml: str) -> VersionCode:
    """Return the model version pinned in a rendered model-server overlay.

    Args:
        rendered_yaml: Output of :func:`render_overlay` for a model-server overlay.

    Returns:
        The parsed version code, from the server container's env var ``MODEL_VERSION``.

    Raises:
        ConfigError: no ``slipway-server`` Deployment, no version (or more than one), or the
            version is not a valid code.
    """
    deployments = [
        doc
        for doc in yaml.safe_load_all(rendered_yaml)
        if isinstance(doc, dict)
        and doc.get("kind") == "Deployment"
        and doc.get("metadata", {}).get("name") == DEPLOYMENT
    ]
    if len(deployments) != 1:
        raise ConfigError(
            f"expected one Deployment {DEPLOYMENT!r} in the rendered manifests, found "
            f"{len(deployments)}: render a model-server overlay (manifests/overlays/<env>)"
        )
    template = deployments[0]["spec"]["template"]
    containers = [c for c in template["spec"]["containers"] if c.get("name") == CONTAINER]
    values = [
        e.get("value")
        for c in containers
        for e in c.get("env") or []
        if e.get("name") == VERSION_ENV
    ]
    if len(values) != 1 or not values[0]:
        raise ConfigError(
            f"the pod template must pin the model version once, in env {VERSION_ENV} of container "
            f"{CONTAINER!r}; found {values}: set it with slipway deploy --version <code>"
        )
    return VersionCode.parse(values[0])


def _check_overlay(overlay_dir: Path) -> None:
    kustomization = overlay_dir / "kustomization.yaml"
    if not kustomization.is_file():
        raise ConfigError(
            f"{overlay_dir} is not a kustomize overlay (no kustomization.yaml): pass "
            "manifests/overlays/<env>"
        )
    try:
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{kustomization} is not valid YAML: {e}") from e
    paths = [p.get("path") for p in spec.get("patches") or [] if isinstance(p, dict)]
    if MODEL_VERSION_FILE not in paths:
        raise ConfigError(
            f"{kustomization} does not list {MODEL_VERSION_FILE!r} under patches, so a version "
            f"written there would not be deployed: add '- path: {MODEL_VERSION_FILE}'"
        )


def _version_patch(version_code: VersionCode, cause: str) -> dict[str, Any]:
    version = str(version_code)  # plain text: yaml.SafeDumper does not represent subclasses
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": DEPLOYMENT,
            # on the Deployment too: kubectl rollout history reads it from the ReplicaSet,
            # which copies the Deployment's annotations
            "annotations": {CHANGE_CAUSE_ANNOTATION: cause},
        },
        "spec": {
            "template": {
                "metadata": {
                    # kubectl rollout history shows this (it names the version, see cause)
                    "annotations": {CHANGE_CAUSE_ANNOTATION: cause}
                },
                "spec": {
                    "containers": [
                        {
                            "name": CONTAINER,
                            "env": [{"name": VERSION_ENV, "value": version}],
                        }
                    ]
                },
            }
        },
    }
