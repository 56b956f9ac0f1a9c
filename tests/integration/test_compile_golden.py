"""Golden test: recompiling the pipeline gives exactly the committed YAML."""

import pytest
import yaml

from pipelines.compiled import COMPILED, compile_pipeline
from slipway.config import load_settings
from slipway.params import load_params
from tests.support import REPO

pytestmark = pytest.mark.integration
PROJECT = REPO


@pytest.fixture(scope="module")
def settings():
    return load_settings(project_dir=PROJECT, image_registry="", image_tag="0.1.0")


def test_committed_yaml_is_current(settings, tmp_path):
    fresh = compile_pipeline(settings, tmp_path / "training_pipeline.yaml")
    assert fresh.read_text() == COMPILED.read_text(), (
        "run `make compile-pipeline` and commit the YAML"
    )


def pipeline_spec() -> dict:
    """The pipeline document; kfp-kubernetes appends a second one (the platform spec)."""
    return next(yaml.safe_load_all(COMPILED.read_text()))


def test_dashboard_parameters_have_the_params_yaml_defaults(settings):
    spec = pipeline_spec()
    params = load_params(PROJECT / "params.yaml")
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["dataset_version"]["defaultValue"] == "v2"
    assert inputs["dataset_rev"]["defaultValue"] == "HEAD"
    assert inputs["evaluate_params"]["defaultValue"]["min_delta"] == params.evaluate.min_delta
    assert inputs["search_params"]["defaultValue"]["scoring"] == params.search.scoring
    assert len(inputs["search_params"]["defaultValue"]["candidates"]) == len(
        params.search.candidates
    )


def test_every_task_runs_in_our_component_image(settings):
    spec = pipeline_spec()
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {
        f"exec-{step}"
        for step in (
            "pull-data",
            "validate-data",
            "search-plan",
            "search-shard",
            "search",
            "evaluate",
            "promote",
        )
    }
    for name, executor in executors.items():
        assert executor["container"]["image"] == settings.component_image, name
        # nothing is pip-installed when a task starts: the image has kfp and slipway
        assert "pip install" not in " ".join(executor["container"]["command"]), name


def test_promote_runs_only_when_the_gate_passes():
    spec = pipeline_spec()
    dag = spec["root"]["dag"]["tasks"]
    condition = next(t for name, t in dag.items() if name.startswith("condition"))
    assert "evaluate-Output" in condition["triggerPolicy"]["condition"]
    assert "evaluate" in condition["dependentTasks"]
