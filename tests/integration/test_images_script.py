"""scripts/images.sh builds and pushes exactly the references that Settings gives the pipeline.

Run in its `tags` and `--dry-run` modes: no Docker daemon is needed or started.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from slipway.config import Settings
from tests.support import REPO

pytestmark = pytest.mark.integration

ROOT = REPO
SCRIPT = ROOT / "scripts" / "images.sh"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def images_sh(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**base, **env},
    )


def expected_refs(settings: Settings) -> list[str]:
    refs = []
    for image, name in [
        (settings.component_image, "slipway-components"),
        (settings.server_image, "slipway-server"),
    ]:
        refs += [image, settings.image(name, settings.git_commit)]
    return refs


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("SLIPWAY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(ROOT)
    return monkeypatch


@pytest.mark.parametrize(
    "env",
    [
        {"SLIPWAY_GIT_COMMIT": COMMIT},
        {"SLIPWAY_GIT_COMMIT": COMMIT, "SLIPWAY_IMAGE_REGISTRY": ECR},
        {"SLIPWAY_GIT_COMMIT": COMMIT, "SLIPWAY_IMAGE_REGISTRY": ECR, "SLIPWAY_IMAGE_TAG": "rc1"},
    ],
    ids=["defaults", "ecr-registry", "ecr-registry-and-tag"],
)
def test_tags_are_the_settings_images_plus_the_commit(
    env: dict[str, str], clean_env: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        clean_env.setenv(key, value)
    proc = images_sh("tags", **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected_refs(Settings())


def test_default_tags_use_the_package_version_and_the_checkout_commit(
    clean_env: pytest.MonkeyPatch,
) -> None:
    before = Settings()
    proc = images_sh("tags")
    after = Settings()  # other work may dirty the tree meanwhile: accept either reading
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() in (expected_refs(before), expected_refs(after))
    assert proc.stdout.splitlines()[0] == "slipway-components:0.1.0"
    assert before.git_commit not in ("", "unknown")


def test_dry_run_build_passes_labels_and_base_and_tags_both() -> None:
    proc = images_sh(
        "--dry-run",
        "build",
        SLIPWAY_GIT_COMMIT=COMMIT,
        SLIPWAY_IMAGE_REGISTRY=ECR,
        PYTHON_BASE="slipway-base:bookworm",
        SOURCE_URL="https://github.com/example/slipway",
        DOCKER_BUILD_FLAGS="--network host",
    )
    assert proc.returncode == 0, proc.stderr
    builds = proc.stdout.splitlines()
    assert len(builds) == 2
    for line, name in zip(builds, ["components", "server"], strict=True):
        assert line.startswith(f"docker build --file {ROOT}/images/{name}.Dockerfile ")
        assert f"--build-arg GIT_COMMIT={COMMIT}" in line
        assert "--build-arg VERSION=0.1.0" in line
        assert "--build-arg PYTHON_BASE=slipway-base:bookworm" in line
        assert "--build-arg SOURCE_URL=https://github.com/example/slipway" in line
        assert "--network host" in line
        assert f"--tag {ECR}slipway-{name}:0.1.0 --tag {ECR}slipway-{name}:{COMMIT}" in line
        assert line.endswith(f" {ROOT}")


def test_dry_run_push_logs_in_to_ecr_then_pushes_four_references() -> None:
    proc = images_sh("push", "--dry-run", SLIPWAY_GIT_COMMIT=COMMIT, SLIPWAY_IMAGE_REGISTRY=ECR)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "aws ecr get-login-password --region eu-west-1 | docker login --username AWS "
        "--password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    )
    assert lines[1:] == [
        f"docker push {ECR}slipway-components:0.1.0",
        f"docker push {ECR}slipway-components:{COMMIT}",
        f"docker push {ECR}slipway-server:0.1.0",
        f"docker push {ECR}slipway-server:{COMMIT}",
    ]


@pytest.mark.parametrize(
    ("args", "registry"),
    [(["--no-login"], ECR), ([], "registry.example.com:5000/team/")],
    ids=["no-login", "not-ecr"],
)
def test_push_skips_the_ecr_login(args: list[str], registry: str) -> None:
    proc = images_sh(
        "push",
        "server",
        "--dry-run",
        *args,
        SLIPWAY_GIT_COMMIT=COMMIT,
        SLIPWAY_IMAGE_REGISTRY=registry,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"docker push {registry}slipway-server:0.1.0",
        f"docker push {registry}slipway-server:{COMMIT}",
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["build"], {"DOCKER": "/nonexistent/docker"}, "'/nonexistent/docker' not found"),
        (["build"], {"DOCKER": "/bin/false"}, "Docker is not reachable"),
        (["push"], {"DOCKER": "/bin/false", "SLIPWAY_IMAGE_REGISTRY": ECR}, "not reachable"),
        (["push"], {}, "SLIPWAY_IMAGE_REGISTRY is empty"),
        (["tags"], {"SLIPWAY_IMAGE_REGISTRY": ECR.rstrip("/")}, "must end with '/'"),
        (["tags"], {"SLIPWAY_IMAGE_TAG": "a/b"}, "not a valid image tag"),
        (["deploy"], {}, "unknown argument 'deploy'"),
    ],
    ids=[
        "no-docker",
        "docker-unreachable",
        "push-unreachable",
        "push-nowhere",
        "bad-registry",
        "bad-tag",
        "bad-verb",
    ],
)
def test_failures_say_what_to_fix(args: list[str], env: dict[str, str], message: str) -> None:
    proc = images_sh(*args, SLIPWAY_GIT_COMMIT=COMMIT, **env)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert message in proc.stderr
