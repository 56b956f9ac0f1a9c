"""Unit tests of slipway.release.overlay: pinning the model version in an overlay (no kubectl)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from slipway.errors import ConfigError
from slipway.release.overlay import MODEL_VERSION_FILE, read_model_version, set_model_version
from tests.support import REPO

DEV_OVERLAY = REPO / "manifests" / "overlays" / "dev"
COMMITTED_CODE = "v1-20261128-00000000"
NEW_CODE = "v2-20261129-0a1b2c3d"


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    """A copy of the dev overlay (only its own files; the base is not needed here)."""
    return Path(shutil.copytree(DEV_OVERLAY, tmp_path / "dev"))


def _pinned(overlay: Path) -> dict[str, str]:
    """Every place of model-version.yaml that carries the version or the cause."""
    patch = yaml.safe_load((overlay / MODEL_VERSION_FILE).read_text())
    template = patch["spec"]["template"]
    (container,) = template["spec"]["containers"]
    return {
        "deployment_cause": patch["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "template_annotations": ",".join(template["metadata"]["annotations"]),
        "template_cause": template["metadata"]["annotations"]["kubernetes.io/change-cause"],
        **{e["name"]: e["value"] for e in container["env"]},
        "container": container["name"],
    }


@pytest.mark.parametrize("overlay_name", ["dev", "prod"])
def test_committed_file_is_exactly_what_set_model_version_writes(
    overlay_name: str, tmp_path: Path
) -> None:
    committed = REPO / "manifests" / "overlays" / overlay_name / MODEL_VERSION_FILE
    copy = Path(shutil.copytree(committed.parent, tmp_path / overlay_name))
    set_model_version(copy, COMMITTED_CODE, f"deploy model {COMMITTED_CODE}")
    assert (copy / MODEL_VERSION_FILE).read_text() == committed.read_text()


def test_set_model_version_pins_every_place(overlay: Path) -> None:
    written = set_model_version(overlay, NEW_CODE, f"deploy model {NEW_CODE}")
    assert written == overlay / MODEL_VERSION_FILE
    assert _pinned(overlay) == {
        "deployment_cause": f"deploy model {NEW_CODE}",
        "template_annotations": "kubernetes.io/change-cause",  # the version is pinned once: env
        "template_cause": f"deploy model {NEW_CODE}",
        "MODEL_VERSION": NEW_CODE,
        "container": "server",
    }
    assert sorted(p.name for p in overlay.iterdir() if p.name.startswith(".")) == []
    assert written.stat().st_mode & 0o777 == 0o644


def test_cause_with_quotes_and_colons_round_trips(overlay: Path) -> None:
    cause = "deploy model v2-20261129-0a1b2c3d: 'retrain' by alice # ticket #42"
    set_model_version(overlay, NEW_CODE, cause)
    assert _pinned(overlay)["template_cause"] == cause


@pytest.mark.parametrize(
    "bad_code",
    [
        "",
        "1-20261128-00000000",
        "V1-20261128-00000000",
        "v-20261128-00000000",
        "v1-2026112-00000000",
        "v1-20261128-0000000",
        "v1-20261128-0000000G",
        "v1-20261128-ABCDEF12",
        "v1-20261128-00000000\n",
        " v1-20261128-00000000",
        "v1-20261128-00000000; rm -rf /",
        "latest",
    ],
)
def test_bad_version_code_raises_and_leaves_the_file_unchanged(
    overlay: Path, bad_code: str
) -> None:
    before = (overlay / MODEL_VERSION_FILE).read_bytes()
    with pytest.raises(ConfigError, match="model version code") as info:
        set_model_version(overlay, bad_code, "deploy model x")
    assert repr(bad_code) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert (overlay / MODEL_VERSION_FILE).read_bytes() == before
    assert sorted(p.name for p in overlay.iterdir()) == sorted(
        p.name for p in DEV_OVERLAY.iterdir()
    )


@pytest.mark.parametrize("bad_cause", ["", "   ", "line one\nline two", "x" * 257, "tab\there"])
def test_bad_cause_raises_and_leaves_the_file_unchanged(overlay: Path, bad_cause: str) -> None:
    before = (overlay / MODEL_VERSION_FILE).read_bytes()
    with pytest.raises(ConfigError, match="change cause"):
        set_model_version(overlay, NEW_CODE, bad_cause)
    assert (overlay / MODEL_VERSION_FILE).read_bytes() == before


def test_folder_without_kustomization_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no kustomization\.yaml"):
        set_model_version(tmp_path, NEW_CODE, f"deploy model {NEW_CODE}")
    assert list(tmp_path.iterdir()) == []


def test_overlay_that_does_not_patch_with_the_file_is_refused(overlay: Path) -> None:
    kustomization = overlay / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text())
    spec["patches"] = [p for p in spec["patches"] if p.get("path") != MODEL_VERSION_FILE]
    kustomization.write_text(yaml.safe_dump(spec))
    before = (overlay / MODEL_VERSION_FILE).read_bytes()
    with pytest.raises(ConfigError, match=r"does not list 'model-version\.yaml'"):
        set_model_version(overlay, NEW_CODE, f"deploy model {NEW_CODE}")
    assert (overlay / MODEL_VERSION_FILE).read_bytes() == before


def _rendered(*model_versions: str, container: str = "server") -> str:
    env = [{"name": "SLIPWAY_MODEL_NAME", "value": "slipway"}]
    env += [{"name": "MODEL_VERSION", "value": value} for value in model_versions]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "slipway-server"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubernetes.io/change-cause": "x"}},
                "spec": {"containers": [{"name": container, "env": env}]},
            }
        },
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "slipway-server"}}
    return yaml.safe_dump_all([service, deployment])


def test_read_model_version_returns_the_pinned_code() -> None:
    assert read_model_version(_rendered(NEW_CODE)) == NEW_CODE


@pytest.mark.parametrize(
    ("model_versions", "container"),
    [
        ((), "server"),
        ((NEW_CODE, COMMITTED_CODE), "server"),
        (("",), "server"),
        ((NEW_CODE,), "app"),
    ],
    ids=["missing", "twice", "empty", "other-container"],
)
def test_read_model_version_refuses_a_template_that_does_not_pin_it_once(
    model_versions: tuple[str, ...], container: str
) -> None:
    with pytest.raises(ConfigError, match="must pin the model version once, in env MODEL_VERSION"):
        read_model_version(_rendered(*model_versions, container=container))


def test_read_model_version_refuses_a_malformed_code() -> None:
    with pytest.raises(ConfigError, match="'v2-latest'"):
        read_model_version(_rendered("v2-latest"))


def test_read_model_version_needs_the_server_deployment() -> None:
    only_service = yaml.safe_dump({"kind": "Service", "metadata": {"name": "slipway-server"}})
    with pytest.raises(ConfigError, match="found 0"):
        read_model_version(only_service)
