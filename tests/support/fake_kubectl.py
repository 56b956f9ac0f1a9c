"""A recording fake ``kubectl`` for deploy/rollback tests without a cluster.

:func:`install_fake_kubectl` writes an executable ``kubectl`` script into a folder. The script
appends its argv (one JSON list a line) to a log and answers from a JSON state file that
simulates the revisions of ``deployment/slipway-server`` the way the Deployment controller keeps
them: every distinct pod template is one revision; ``apply`` of a new template adds revision
max+1; ``rollout undo`` (or ``--to-revision N``) brings an old template back *renumbered* to
max+1. ``kustomize`` is passed through to the real kubectl so rendering still works.

State file::

    {"context": "test-cluster" | null,          # null: `config current-context` fails
     "revisions": [{"revision": 1, "version": "v1-…", "cause": "deploy model v1-…"}],
     "current": 1,                              # the revision the Deployment is at
     "fail": {"rollout status": "error text"}}  # argv prefixes that fail with that stderr
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = r"""#!{python}
import json, subprocess, sys
import yaml

STATE, LOG, REAL = {state!r}, {log!r}, {real!r}
argv = sys.argv[1:]
with open(LOG, "a", encoding="utf-8") as log:
    log.write(json.dumps(argv) + "\n")
if argv[:1] == ["kustomize"]:
    sys.exit(subprocess.run([REAL, *argv]).returncode)
with open(STATE, encoding="utf-8") as f:
    state = json.load(f)


def save():
    with open(STATE, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)


def fail(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


for prefix, message in (state.get("fail") or {{}}).items():
    if " ".join(argv).startswith(prefix):
        fail(message)
revisions = state.setdefault("revisions", [])
by_number = {{r["revision"]: r for r in revisions}}
top = max(by_number, default=0)


def deployment():
    rev = by_number[state["current"]]
    version, cause = rev["version"], rev["cause"]
    env = [{{"name": "MODEL_ROOT", "value": "/models"}},
           {{"name": "MODEL_VERSION", "value": rev.get("env_version", version)}},
           {{"name": "SLIPWAY_MODEL_VERSION", "value": version}}]
    return {{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {{"name": "slipway-server", "namespace": "slipway",
                     "annotations": {{"deployment.kubernetes.io/revision": str(rev["revision"]),
                                     "kubernetes.io/change-cause": cause}}}},
        "spec": {{"revisionHistoryLimit": 10, "template": {{
            "metadata": {{"annotations": {{"slipway.io/model-version": version,
                                         "kubernetes.io/change-cause": cause}}}},
            "spec": {{"containers": [{{"name": "server", "env": env}}]}}}}}},
    }}


def activate(rev):
    rev["revision"] = top + 1 if rev["revision"] != state.get("current") else rev["revision"]
    state["current"] = rev["revision"]
    save()


if argv == ["config", "current-context"]:
    if not state.get("context"):
        fail("error: current-context is not set")
    print(state["context"])
elif argv[:2] == ["get", "deployment/slipway-server"] and argv[-2:] == ["-o", "json"]:
    if state.get("current") not in by_number:
        fail('Error from server (NotFound): deployments.apps "slipway-server" not found')
    print(json.dumps(deployment()))
elif argv[:3] == ["rollout", "undo", "deployment/slipway-server"]:
    wanted = [a.split("=", 1)[1] for a in argv if a.startswith("--to-revision=")]
    if wanted:
        if int(wanted[0]) not in by_number:
            fail(f"error: unable to find specified revision {{wanted[0]}} in history")
        target = by_number[int(wanted[0])]
    else:
        older = [n for n in by_number if n < state["current"]]
        if not older:
            fail('error: no rollout history found for deployment "slipway-server"')
        target = by_number[max(older)]
    activate(target)
    print("deployment.apps/slipway-server rolled back")
elif argv[:3] == ["rollout", "status", "deployment/slipway-server"]:
    print('deployment "slipway-server" successfully rolled out')
elif argv[:2] == ["apply", "-k"]:
    rendered = subprocess.run([REAL, "kustomize", argv[2]], capture_output=True, text=True,
                              check=True).stdout
    (dep,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    version, cause = ann["slipway.io/model-version"], ann["kubernetes.io/change-cause"]
    same = [r for r in revisions if (r["version"], r["cause"]) == (version, cause)]
    if same:
        activate(same[0])
    else:
        revisions.append({{"revision": top + 1, "version": version, "cause": cause}})
        state["current"] = top + 1
        save()
    print("deployment.apps/slipway-server configured")
else:
    fail("fake kubectl: unsupported command " + " ".join(argv), 2)
"""


@dataclass
class FakeKubectl:
    path: Path
    state_path: Path
    log_path: Path

    def calls(self, *, include_kustomize: bool = False) -> list[list[str]]:
        """Every recorded argv, oldest first (``kustomize`` renders left out by default)."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        calls = [json.loads(line) for line in lines]
        return [c for c in calls if include_kustomize or c[:1] != ["kustomize"]]

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text(encoding="utf-8"))

    def set_state(self, **changes: Any) -> None:
        state = self.state()
        state.update(changes)
        self.state_path.write_text(json.dumps(state, indent=1), encoding="utf-8")

    def served(self) -> tuple[int, str]:
        """(current revision, version it pins)."""
        state = self.state()
        (rev,) = [r for r in state["revisions"] if r["revision"] == state["current"]]
        return rev["revision"], rev["version"]


def install_fake_kubectl(bin_dir: Path, state: dict[str, Any], real_kubectl: str) -> FakeKubectl:
    """Write ``bin_dir/kubectl`` (executable) with its state file and log beside it."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = FakeKubectl(bin_dir / "kubectl", bin_dir / "kubectl-state.json", bin_dir / "kubectl.log")
    fake.state_path.write_text(json.dumps(state, indent=1), encoding="utf-8")
    fake.path.write_text(
        _SCRIPT.format(
            python=sys.executable,
            state=str(fake.state_path),
            log=str(fake.log_path),
            real=real_kubectl,
        ),
        encoding="utf-8",
    )
    fake.path.chmod(0o755)
    return fake
