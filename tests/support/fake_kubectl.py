"""A recording fake ``kubectl`` for deploy/rollback tests without a cluster.

:class:`FakeKubectl` is a runner for :class:`slipway.release.kubectl.Kubectl`
(``Kubectl(namespace="slipway", runner=fake)``): it records every argv and answers from an
in-memory state that simulates the revisions of ``deployment/slipway-server`` the way the
Deployment controller keeps them: every distinct pod template is one revision; ``apply`` of a new
template adds revision max+1; ``rollout undo`` (or ``--to-revision N``) brings an old template
back *renumbered* to max+1. ``kustomize`` (and the render inside ``apply -k``) runs the real
kubectl, so rendering still works.

State::

    {"context": "test-cluster" | None,          # None: `config current-context` fails
     "revisions": [{"revision": 1, "version": "v1-…", "cause": "deploy model v1-…",
                    "env_version": "v9-…"}],    # optional: what MODEL_VERSION reads instead
     "current": 1,                              # the revision the Deployment is at
     "fail": {"rollout status": "error text"}}  # argv prefixes that fail with that stderr
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Sequence
from typing import Any

import yaml

from slipway.release.names import (
    CHANGE_CAUSE_ANNOTATION,
    CONTAINER,
    DEPLOYMENT,
    REVISION_ANNOTATION,
    VERSION_ENV,
)

NAMESPACE = "slipway"


class FakeKubectl:
    """An in-process kubectl: call it as a :class:`~slipway.release.kubectl.KubectlRunner`.

    Args:
        state: The simulated cluster (see the module docstring); copied.
        real_kubectl: The real kubectl, for ``kustomize`` and ``apply -k`` renders; ``None``
            when the test renders nothing.
    """

    def __init__(self, state: dict[str, Any], real_kubectl: str | None = None) -> None:
        self._state = copy.deepcopy(state)
        self._calls: list[list[str]] = []
        self.real_kubectl = real_kubectl

    # --- what the tests read and change ---------------------------------------------------

    def calls(self, *, include_kustomize: bool = False) -> list[list[str]]:
        """Every recorded argv without the executable, oldest first (renders left out)."""
        return [list(c) for c in self._calls if include_kustomize or c[:1] != ["kustomize"]]

    def state(self) -> dict[str, Any]:
        """A copy of the simulated cluster."""
        return copy.deepcopy(self._state)

    def set_state(self, **changes: Any) -> None:
        """Change top-level keys of the state (``context``, ``revisions``, ``current``, ``fail``)."""
        self._state.update(copy.deepcopy(changes))

    def served(self) -> tuple[int, str]:
        """(current revision, version it pins)."""
        (rev,) = [r for r in self._state["revisions"] if r["revision"] == self._state["current"]]
        return rev["revision"], rev["version"]

    # --- the runner -----------------------------------------------------------------------

    def __call__(self, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Answer ``argv`` (``argv[0]`` is the executable) as kubectl would."""
        args = [str(a) for a in argv[1:]]
        self._calls.append(args)
        if args[:1] == ["kustomize"]:
            return self._real(args, timeout)
        for prefix, message in (self._state.get("fail") or {}).items():
            if " ".join(args).startswith(prefix):
                return _done(args, 1, stderr=message)
        try:
            return _done(args, 0, stdout=self._answer(args, timeout))
        except _Failed as failed:
            return _done(args, failed.code, stderr=str(failed))

    def _answer(self, args: list[str], timeout: float) -> str:
        name = f"deployment/{DEPLOYMENT}"
        if args == ["config", "current-context"]:
            if not self._state.get("context"):
                raise _Failed("error: current-context is not set")
            return f"{self._state['context']}\n"
        if args[:2] == ["get", name] and "json" in args:
            if self._state.get("current") not in self._by_number():
                if "--ignore-not-found" in args:
                    return ""
                raise _Failed(
                    f'Error from server (NotFound): deployments.apps "{DEPLOYMENT}" not found'
                )
            return json.dumps(self._deployment())
        if args[:3] == ["rollout", "undo", name]:
            return self._undo(args)
        if args[:3] == ["rollout", "status", name]:
            return f'deployment "{DEPLOYMENT}" successfully rolled out\n'
        if args[:2] == ["apply", "-k"]:
            return self._apply(args[2], timeout)
        raise _Failed("fake kubectl: unsupported command " + " ".join(args), code=2)

    def _by_number(self) -> dict[int, dict[str, Any]]:
        return {r["revision"]: r for r in self._state.setdefault("revisions", [])}

    def _top(self) -> int:
        return max(self._by_number(), default=0)

    def _activate(self, rev: dict[str, Any]) -> None:
        if rev["revision"] != self._state.get("current"):
            rev["revision"] = self._top() + 1
        self._state["current"] = rev["revision"]

    def _deployment(self) -> dict[str, Any]:
        rev = self._by_number()[self._state["current"]]
        version, cause = rev["version"], rev["cause"]
        env = [
            {"name": "MODEL_ROOT", "value": "/models"},
            {"name": VERSION_ENV, "value": rev.get("env_version", version)},
        ]
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": DEPLOYMENT,
                "namespace": NAMESPACE,
                "annotations": {
                    REVISION_ANNOTATION: str(rev["revision"]),
                    CHANGE_CAUSE_ANNOTATION: cause,
                },
            },
            "spec": {
                "revisionHistoryLimit": 10,
                "template": {
                    "metadata": {"annotations": {CHANGE_CAUSE_ANNOTATION: cause}},
                    "spec": {"containers": [{"name": CONTAINER, "env": env}]},
                },
            },
        }

    def _undo(self, args: list[str]) -> str:
        by_number = self._by_number()
        wanted = [a.split("=", 1)[1] for a in args if a.startswith("--to-revision=")]
        if wanted:
            if int(wanted[0]) not in by_number:
                raise _Failed(f"error: unable to find specified revision {wanted[0]} in history")
            target = by_number[int(wanted[0])]
        else:
            older = [n for n in by_number if n < self._state["current"]]
            if not older:
                raise _Failed(f'error: no rollout history found for deployment "{DEPLOYMENT}"')
            target = by_number[max(older)]
        self._activate(target)
        return f"deployment.apps/{DEPLOYMENT} rolled back\n"

    def _apply(self, overlay: str, timeout: float) -> str:
        rendered = self._real(["kustomize", overlay], timeout)
        if rendered.returncode != 0:
            raise _Failed(rendered.stderr)
        (dep,) = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment"]
        template = dep["spec"]["template"]
        (container,) = [c for c in template["spec"]["containers"] if c["name"] == CONTAINER]
        (version,) = [e["value"] for e in container["env"] if e["name"] == VERSION_ENV]
        cause = template["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION]
        revisions = self._state.setdefault("revisions", [])
        same = [r for r in revisions if (r["version"], r["cause"]) == (version, cause)]
        if same:
            self._activate(same[0])
        else:
            revisions.append({"revision": self._top() + 1, "version": version, "cause": cause})
            self._state["current"] = self._top()
        return f"deployment.apps/{DEPLOYMENT} configured\n"

    def _real(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if self.real_kubectl is None:
            raise AssertionError(f"FakeKubectl was given no real kubectl to run {args}")
        return subprocess.run(
            [self.real_kubectl, *args], capture_output=True, text=True, timeout=timeout, check=False
        )


class _Failed(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _done(
    args: list[str], code: int, stdout: str = "", stderr: str = ""
) -> subprocess.CompletedProcess[str]:
    stderr = stderr if not stderr or stderr.endswith("\n") else stderr + "\n"
    return subprocess.CompletedProcess(["kubectl", *args], code, stdout, stderr)
