"""Static checks of the images and the GitHub Actions workflows (no Docker, no network).

hadolint and zizmor are the real tools from the locked environment; each is also shown a bad
input, so that a silent tool (wrong flags, empty output) cannot pass these tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

pytestmark = pytest.mark.integration

ROOT = REPO
VENV_BIN = Path(sys.executable).parent
DOCKERFILES = sorted((ROOT / "images").glob("*.Dockerfile"))
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def tool(name: str) -> Path:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} not found at {path}: run `uv sync --locked` (dev group)")
    return path


def test_both_dockerfiles_and_workflows_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["components.Dockerfile", "server.Dockerfile"]
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "release.yml"]


# --- hadolint -------------------------------------------------------------------------------


def hadolint(path: Path, config: Path | None = ROOT / ".hadolint.yaml") -> list[dict]:
    argv = [str(tool("hadolint")), "--format", "json", "--no-fail"]
    if config is not None:
        argv += ["--config", str(config)]
    proc = subprocess.run([*argv, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_no_error_or_warning(dockerfile: Path) -> None:
    findings = hadolint(dockerfile)
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert serious == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in serious)


def test_every_ignored_hadolint_rule_says_why() -> None:
    text = (ROOT / ".hadolint.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["failure-threshold"] == "warning"
    for code in config.get("ignored") or []:
        line = next(ln for ln in text.splitlines() if code in ln)
        reason = line.partition("#")[2].strip()
        assert len(reason.split()) >= 3, f"ignored rule {code} needs a comment saying why: {line!r}"


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && apt-get install curl\nADD . /app\n")
    codes = {f["code"]: f["level"] for f in hadolint(bad, config=None)}
    assert codes["DL3020"] == "error"  # ADD for a folder
    assert codes["DL3003"] == "warning"  # cd instead of WORKDIR


# --- Dockerfile structure -------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line.removesuffix("\\").rstrip() + " "
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in logical]


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_layout(dockerfile: Path) -> None:
    ins = instructions(dockerfile)
    assert ins[0] == ("ARG", "PYTHON_BASE=python:3.11-slim-bookworm")
    builder, runtime = stages(dockerfile)
    assert builder[0] == ("FROM", "${PYTHON_BASE} AS builder")
    assert runtime[0] == ("FROM", "${PYTHON_BASE} AS runtime")

    steps = [f"{k} {v}" for k, v in builder]
    lock = steps.index("COPY pyproject.toml uv.lock ./")
    deps = steps.index("RUN uv sync --locked --no-dev --no-install-project")
    src = steps.index("COPY src ./src")
    project = steps.index("RUN uv sync --locked --no-dev --no-editable")
    assert lock < deps < src < project, "lock file and dependencies must come before the source"
    env = " ".join(v for k, v in builder if k == "ENV")
    assert "UV_PYTHON_DOWNLOADS=never" in env
    assert "UV_PROJECT_ENVIRONMENT=/opt/venv" in env

    # the runtime stage takes only the venv from the builder, and runs as uid 10001
    copies = [v for k, v in runtime if k == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    users = [v for k, v in runtime if k == "USER"]
    assert users == ["10001:10001"]
    assert "useradd --system --uid 10001" in " ".join(v for k, v in runtime if k == "RUN")
    runtime_env = " ".join(v for k, v in runtime if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime_env
    assert "PYTHONUNBUFFERED=1" in runtime_env
    assert "PATH=/opt/venv/bin:$PATH" in runtime_env
    assert "SLIPWAY_GIT_COMMIT=${GIT_COMMIT}" in runtime_env
    labels = " ".join(v for k, v in runtime if k == "LABEL")
    for key, value in [
        ("revision", "${GIT_COMMIT}"),
        ("version", "${VERSION}"),
        ("source", "${SOURCE_URL}"),
        ("title", f"slipway-{dockerfile.name.removesuffix('.Dockerfile')}"),
    ]:
        assert f'org.opencontainers.image.{key}="{value}"' in labels


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_holds_no_secret(dockerfile: Path) -> None:
    for kind, args in instructions(dockerfile):
        if kind in ("ARG", "ENV"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", " " + args)
            for name in names or [args.split("=")[0]]:
                assert not re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL", name, re.I)
        assert kind != "ADD", "ADD can fetch URLs and unpack archives; use COPY"


def test_server_image_entrypoint_and_port() -> None:
    runtime = stages(ROOT / "images" / "server.Dockerfile")[-1]
    assert ("ENTRYPOINT", '["python", "-m", "slipway", "serve"]') in runtime
    assert ("EXPOSE", "8080") in runtime


def test_components_image_leaves_the_command_to_kfp() -> None:
    path = ROOT / "images" / "components.Dockerfile"
    runtime = stages(path)[-1]
    assert not [k for k, _ in runtime if k in ("ENTRYPOINT", "CMD")]
    assert "No ENTRYPOINT or CMD on purpose: Kubeflow Pipelines sets" in path.read_text()
    # the KFP v2 launcher writes input artifacts under these roots, as the task's user
    run = " ".join(v for k, v in runtime if k == "RUN")
    assert "mkdir -p /gcs /minio /s3" in run
    assert "chown 10001:10001 /gcs /minio /s3" in run


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches a path's parents."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_sends_only_the_build_inputs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    for kept in [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "src/slipway/config.py",
        "components/__init__.py",
        "pipelines/training_pipeline.yaml",
    ]:
        assert not dockerignore_excludes(kept, patterns), kept
    for dropped in [
        ".venv/bin/python",
        ".git/HEAD",
        ".slipway/mlflow.db",
        "data/breast_cancer.csv",
        "tests/unit/test_x.py",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        "src/slipway/__pycache__/config.cpython-311.pyc",
        ".env",
        "params.yaml.bak",
    ]:
        assert dockerignore_excludes(dropped, patterns), dropped


# --- GitHub Actions workflows ---------------------------------------------------------------


def zizmor(directory: Path) -> list[dict]:
    argv = [str(tool("zizmor")), "--offline", "--format", "json", str(directory)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=directory)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"zizmor gave no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}")


def test_zizmor_reports_no_high_severity_finding() -> None:
    findings = zizmor(ROOT / ".github" / "workflows")
    high = [f for f in findings if f["determinations"]["severity"] == "High"]
    assert high == [], [(f["ident"], f["locations"][0]["concrete"]["feature"]) for f in high]


def test_zizmor_reports_an_unsafe_workflow(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(UNSAFE_WORKFLOW)
    high = {f["ident"] for f in zizmor(workflows) if f["determinations"]["severity"] == "High"}
    assert {"template-injection", "unpinned-uses"} <= high


UNSAFE_WORKFLOW = """\
name: bad
on: pull_request
permissions: write-all
jobs:
  x:
    runs-on: ubuntu-latest
    permissions:
      id-token: write
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def workflow_problems(text: str) -> list[str]:
    """What breaks the house rules for workflows; empty when the workflow follows them."""
    doc = yaml.safe_load(text)
    problems = []
    if doc.get("permissions") not in ({}, {"contents": "read"}):
        problems.append(f"top-level permissions {doc.get('permissions')!r}: use {{}}")
    if "concurrency" not in doc:
        problems.append("no concurrency group")
    for name, job in doc["jobs"].items():
        steps = job.get("steps", [])
        called = job.get("uses")  # a job that calls a reusable workflow has no steps of its own
        if called is not None and not called.startswith("./.github/workflows/"):
            problems.append(
                f"{name}: calls {called}; only this repository's workflows may be called"
            )
        if called is None and "timeout-minutes" not in job:
            problems.append(f"{name}: no timeout-minutes")
        perms = job.get("permissions")
        if not isinstance(perms, dict):
            problems.append(f"{name}: permissions must be a mapping, got {perms!r}")
            perms = {}
        if called is not None and (ROOT / called).is_file():
            steps_of_called = [
                s
                for j in yaml.safe_load((ROOT / called).read_text())["jobs"].values()
                for s in j["steps"]
            ]
        else:
            steps_of_called = []
        uses_oidc = any(
            "configure-aws-credentials" in s.get("uses", "") for s in steps + steps_of_called
        )
        for scope, level in perms.items():
            if level == "write" and not (scope == "id-token" and uses_oidc):
                problems.append(f"{name}: {scope}: write")
        for step in steps:
            uses = step.get("uses")
            if uses and not SHA_PIN.match(uses):
                problems.append(f"{name}: {uses} is not pinned to a commit SHA")
            persist = (step.get("with") or {}).get("persist-credentials")
            if uses and uses.startswith("actions/checkout@") and persist is not False:
                problems.append(f"{name}: checkout without persist-credentials: false")
            if "${{" in step.get("run", ""):
                problems.append(f"{name}: expression inside run: {step['run'][:60]!r}")
    for line in text.splitlines():
        if re.search(r"uses:\s*\S+@[0-9a-f]{40}", line) and not re.search(r"# v\d+\.\d+", line):
            problems.append(f"no '# vX.Y.Z' comment after the SHA: {line.strip()}")
    if "secrets." in text or "aws-access-key-id" in text:
        problems.append("stored secrets or keys are used")
    return problems


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_follows_the_rules(workflow: Path) -> None:
    assert workflow_problems(workflow.read_text()) == []


def test_rules_catch_an_unsafe_workflow() -> None:
    problems = workflow_problems(UNSAFE_WORKFLOW.replace("permissions: write-all", "permissions:"))
    assert any("top-level permissions None" in p for p in problems)
    assert any("no timeout-minutes" in p for p in problems)
    assert any("id-token: write" in p for p in problems)  # no OIDC step in that job
    assert any("not pinned" in p for p in problems)
    assert any("persist-credentials" in p for p in problems)
    assert any("expression inside run" in p for p in problems)


def run_lines(workflow: str) -> list[str]:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    return [s.get("run", "") for job in doc["jobs"].values() for s in job.get("steps", [])]


def test_ci_lints_tests_and_checks_the_compiled_pipeline() -> None:
    runs = "\n".join(run_lines("ci.yml"))
    for command in ["make lint", "make test", "make compile-pipeline"]:
        assert command in runs
    assert "git diff --exit-code pipelines/" in runs
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert set(doc[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as True
    assert doc[True]["push"] == {"branches": ["main"], "tags": ["v*"]}


def test_release_runs_only_after_every_check_passed_for_that_commit() -> None:
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    release = ci["jobs"]["release"]
    assert release["uses"] == "./.github/workflows/release.yml"
    assert set(release["needs"]) == set(ci["jobs"]) - {"release"} == {"lint", "test", "compile"}
    assert "github.event_name == 'push'" in release["if"]
    assert "refs/heads/main" in release["if"]
    assert "refs/tags/v" in release["if"]
    # a release run is never cancelled by a newer push (only pull-request runs are)
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    # release.yml cannot start by itself: its only trigger is the call from ci.yml
    own = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert own[True] == {"workflow_call": None}


def test_release_pushes_both_images_and_submits_the_sha() -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    steps = doc["jobs"]["release"]["steps"]
    aws = next(s for s in steps if "configure-aws-credentials" in s.get("uses", ""))
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert any("amazon-ecr-login" in s.get("uses", "") for s in steps)
    runs = {s.get("run", "").strip(): s.get("env", {}) for s in steps}
    assert runs["scripts/images.sh build"]["SLIPWAY_GIT_COMMIT"] == "${{ github.sha }}"
    assert "scripts/images.sh push --no-login" in runs
    compile_env = next(env for run, env in runs.items() if run.startswith("make compile-pipeline"))
    assert compile_env["SLIPWAY_IMAGE_TAG"] == "${{ github.sha }}"
    assert compile_env["SLIPWAY_IMAGE_REGISTRY"] == "${{ steps.ecr.outputs.registry }}/"
    submit = 'uv run --locked --no-sync slipway submit --version-name "$SLIPWAY_GIT_COMMIT"'
    assert runs[submit]["SLIPWAY_KFP_HOST"] == "${{ vars.KFP_ENDPOINT }}"
