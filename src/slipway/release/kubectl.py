"""kubectl, called through one small runner: every call has a timeout and a clear error.

Deploy and rollback talk to the cluster only through :class:`Kubectl`. It runs its commands
through an injectable *runner* (default :func:`run_subprocess`), so tests hand it an in-process
fake (``tests/support/fake_kubectl.py``) and assert the exact command sequence.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from slipway.errors import ConfigError, KubectlError, KubectlNotFoundError
from slipway.release.names import CHANGE_CAUSE_ANNOTATION, DEPLOYMENT, REVISION_ANNOTATION
from slipway.release.overlay import read_model_version
from slipway.versions import VersionCode

__all__ = [
    "Kubectl",
    "KubectlRunner",
    "ServedVersion",
    "parse_duration",
    "run_subprocess",
    "served_version",
]

_DURATION = re.compile(r"^([1-9][0-9]*)(s|m|h)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


class KubectlRunner(Protocol):
    """Runs one kubectl argv, as :func:`subprocess.run` does with ``capture_output, text``.

    Raises ``FileNotFoundError`` when the executable is missing and
    ``subprocess.TimeoutExpired`` when ``timeout`` (seconds) passes.
    """

    def __call__(self, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (executable first) and return the finished process."""
        ...


def run_subprocess(argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """The default runner: the real executable, output captured as text, never ``check``.

    Args:
        argv: The executable and its arguments.
        timeout: Seconds before ``subprocess.TimeoutExpired``.

    Returns:
        The finished process (its return code not checked).
    """
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class ServedVersion:
    """What the live Deployment's pod template pins.

    Attributes:
        version: The model version code the pod template pins.
        revision: The Deployment's current revision (``kubectl rollout history``), if known.
        cause: The ``kubernetes.io/change-cause`` of the pod template, if any.
    """

    version: VersionCode
    revision: int | None
    cause: str | None


def parse_duration(text: str) -> int:
    """Seconds in a kubectl duration such as ``90s``, ``5m`` or ``1h``.

    Raises:
        ConfigError: not ``<positive integer><s|m|h>``.
    """
    match = _DURATION.fullmatch(text or "")
    if not match:
        raise ConfigError(f"timeout {text!r} is not valid: give e.g. 90s, 5m or 1h")
    return int(match[1]) * _SECONDS[match[2]]


class Kubectl:
    """Runs ``kubectl`` with a timeout; every failure is one :class:`KubectlError` sentence.

    Args:
        executable: kubectl's name on ``PATH`` or its path.
        namespace: Namespace of the model server (``Settings.namespace``).
        timeout_s: Default timeout of one call, in seconds.
        runner: Runs one argv (default :func:`run_subprocess`); tests inject a fake.
    """

    def __init__(
        self,
        executable: str = "kubectl",
        *,
        namespace: str,
        timeout_s: float = 60.0,
        runner: KubectlRunner | None = None,
    ) -> None:
        self.executable = executable
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.runner: KubectlRunner = runner or run_subprocess

    def run(self, *args: str, timeout_s: float | None = None) -> str:
        """Run ``kubectl <args>`` and return its stdout.

        Raises:
            KubectlNotFoundError: kubectl is missing.
            KubectlError: kubectl did not finish in time, or exited non-zero.
        """
        shown = shlex.join(["kubectl", *args])
        timeout = timeout_s or self.timeout_s
        try:
            proc = self.runner([self.executable, *args], timeout=timeout)
        except (FileNotFoundError, PermissionError) as e:  # missing, or not executable
            raise KubectlNotFoundError(
                f"kubectl not found ({self.executable!r}): install kubectl >= 1.27 or pass its "
                "path with --kubectl"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise KubectlError(
                f"`{shown}` did not finish within {timeout:g} s: check that the cluster is "
                "reachable (`kubectl cluster-info`)"
            ) from e
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip() or "no output"
            raise KubectlError(f"`{shown}` failed (exit {proc.returncode}): {detail}")
        return proc.stdout

    def current_context(self) -> str | None:
        """The current kubeconfig context, or ``None`` when no cluster is configured.

        Raises:
            KubectlNotFoundError: kubectl is missing (that is not "no cluster configured").
        """
        try:
            out = self.run("config", "current-context").strip()
        except KubectlNotFoundError:
            raise
        except KubectlError:
            return None  # "current-context is not set": no cluster configured
        return out or None

    def find_deployment(self, name: str = DEPLOYMENT) -> dict[str, Any] | None:
        """The live Deployment object, or ``None`` if there is none.

        ``kubectl get --ignore-not-found`` prints nothing and exits 0 for a missing object, so
        absence is an answer here, not an error.

        Raises:
            KubectlError: kubectl failed otherwise, or did not print JSON.
        """
        out = self.run(
            "get", f"deployment/{name}", "-n", self.namespace, "-o", "json", "--ignore-not-found"
        )
        if not out.strip():
            return None
        try:
            found = json.loads(out)
        except json.JSONDecodeError as e:
            raise KubectlError(f"kubectl get deployment/{name} did not print JSON: {e}") from e
        if found.get("kind") == "List" and not found.get("items"):
            return None  # some kubectl versions print an empty List instead of nothing
        return found

    def get_deployment(self, name: str = DEPLOYMENT) -> dict[str, Any]:
        """The live Deployment object (``kubectl get -o json``).

        Raises:
            KubectlError: there is no such Deployment, or kubectl failed.
        """
        found = self.find_deployment(name)
        if found is None:
            raise KubectlError(
                f"deployment/{name} not found in namespace {self.namespace}: deploy it first "
                f"(`slipway deploy --version <code>`) or set SLIPWAY_NAMESPACE"
            )
        return found

    def apply_kustomization(self, overlay_dir: Path) -> str:
        """``kubectl apply -k <overlay>`` (the overlay sets its own namespace)."""
        return self.run("apply", "-k", str(overlay_dir))

    def rollout_undo(self, name: str = DEPLOYMENT, to_revision: int | None = None) -> str:
        """``kubectl rollout undo deployment/<name> [--to-revision N]``."""
        args = ["rollout", "undo", f"deployment/{name}", "-n", self.namespace]
        if to_revision is not None:
            args.append(f"--to-revision={to_revision}")
        return self.run(*args)

    def rollout_status(self, name: str = DEPLOYMENT, timeout: str = "5m") -> str:
        """Wait until the rollout finishes: ``kubectl rollout status … --timeout``."""
        seconds = parse_duration(timeout)
        return self.run(
            "rollout",
            "status",
            f"deployment/{name}",
            "-n",
            self.namespace,
            f"--timeout={timeout}",
            timeout_s=seconds + 30,
        )


def served_version(deployment: dict[str, Any]) -> ServedVersion:
    """The model version the live Deployment's pod template pins.

    The server container's env var ``MODEL_VERSION`` (read by
    :func:`slipway.release.overlay.read_model_version`, which reads the live object as it reads a
    rendered one).

    Raises:
        KubectlError: the object is not the model server, or the places disagree.
    """
    try:
        version = read_model_version(json.dumps(deployment))
    except ConfigError as e:
        raise KubectlError(f"the live Deployment does not pin one model version: {e}") from e
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    revision = annotations.get(REVISION_ANNOTATION)
    template_annotations = deployment["spec"]["template"].get("metadata", {}).get("annotations")
    return ServedVersion(
        version=version,
        revision=int(revision) if revision and revision.isdigit() else None,
        cause=(template_annotations or {}).get(CHANGE_CAUSE_ANNOTATION),
    )
