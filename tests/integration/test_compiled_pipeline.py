"""The compiled ``slipway-training`` YAML carries the platform settings a cluster needs.

Compiles with the real kfp compiler (and kfp-kubernetes) into ``tmp_path`` and reads the YAML
back: tasks, resources, retry policies, caching, and the ``platforms.kubernetes`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.platform_config import (
    OPTIONAL_CONFIG_KEYS,
    REQUIRED_CONFIG_KEYS,
    STEPS,
    SecretEnv,
    Toleration,
    platform_config_for,
)
from pipelines.training_pipeline import COMPILED, compile_training_pipeline
from slipway.params import load_params
from tests.support import REPO

pytestmark = pytest.mark.integration

ROOT = REPO
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-components:0123abcd"


def _compile(tmp: Path, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    params = load_params(ROOT / "params.yaml")
    platform = platform_config_for(IMAGE, **overrides) if overrides else None
    path = compile_training_pipeline(IMAGE, params, tmp / "pipeline.yaml", platform)
    spec, platform_doc = yaml.safe_load_all(path.read_text())
    return spec, platform_doc["platforms"]["kubernetes"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    return _compile(tmp_path_factory.mktemp("default"))


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of the DAG, nested DAGs (conditions, loops, sub-pipelines) included, by name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def _groups(tasks: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name in tasks if name.startswith(("condition-", "for-loop-"))}


def test_tasks_run_the_configured_image(compiled):
    spec, _ = compiled
    tasks = _tasks(spec)
    assert set(tasks) - _groups(tasks) == set(STEPS) | {"search-fan-out"}
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{step}" for step in STEPS}
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}


def test_resources_per_task_and_search_is_biggest(compiled):
    spec, _ = compiled
    config = platform_config_for(IMAGE)
    executors = spec["deploymentSpec"]["executors"]
    for step in STEPS:
        res = executors[f"exec-{step}"]["container"]["resources"]
        want = config.resources[step]
        assert res["resourceCpuRequest"] == want.cpu_request, step
        assert res["resourceCpuLimit"] == want.cpu_limit, step
        assert res["resourceMemoryRequest"] == want.memory_request, step
        assert res["resourceMemoryLimit"] == want.memory_limit, step
    by_memory = sorted(
        STEPS, key=lambda s: executors[f"exec-{s}"]["container"]["resources"]["memoryLimit"]
    )
    by_cpu = sorted(
        STEPS, key=lambda s: executors[f"exec-{s}"]["container"]["resources"]["cpuRequest"]
    )
    assert by_memory[-1] == "search"
    assert by_cpu[-1] == "search"
    assert executors["exec-search"]["container"]["resources"]["resourceMemoryLimit"] == "4Gi"


def test_retries_only_on_io_tasks_with_backoff(compiled):
    spec, _ = compiled
    retries = {name: t["retryPolicy"] for name, t in _tasks(spec).items() if "retryPolicy" in t}
    assert set(retries) == {"pull-data", "search-shard", "promote"}
    assert retries["pull-data"] == {
        "maxRetryCount": 3,
        "backoffDuration": "30s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
    }
    assert retries["promote"]["maxRetryCount"] == 2
    assert retries["promote"]["backoffDuration"] == "30s"
    assert retries["search-shard"]["maxRetryCount"] == 1  # then the run fails naming the shard


def test_no_task_is_cached(compiled):
    spec, _ = compiled
    tasks = _tasks(spec)
    for name, task in tasks.items():
        if name in _groups(tasks) | {"search-fan-out"}:
            continue
        # enableCache false is protobuf's default, so the compiler writes an empty mapping
        assert task["cachingOptions"] == {}, name
        assert task["cachingOptions"].get("enableCache", False) is False


def test_every_task_has_a_deadline(compiled):
    _, k8s = compiled
    config = platform_config_for(IMAGE)
    executors = k8s["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{step}" for step in STEPS}
    for step in STEPS:
        deadline = int(executors[f"exec-{step}"]["activeDeadlineSeconds"])
        assert deadline == config.resources[step].timeout_seconds
    assert int(executors["exec-search"]["activeDeadlineSeconds"]) == max(
        int(e["activeDeadlineSeconds"]) for e in executors.values()
    )


def test_settings_come_from_the_slipway_config_map(compiled):
    _, k8s = compiled
    for name, executor in k8s["deploymentSpec"]["executors"].items():
        required, optional = executor["configMapAsEnv"]
        assert required["configMapName"] == optional["configMapName"] == "slipway-config"
        assert required["optional"] is False, name
        assert optional["optional"] is True, name
        assert [m["configMapKey"] for m in required["keyToEnv"]] == list(REQUIRED_CONFIG_KEYS)
        assert [m["configMapKey"] for m in optional["keyToEnv"]] == list(OPTIONAL_CONFIG_KEYS)
        assert all(m["configMapKey"] == m["envVar"] for m in required["keyToEnv"])


def test_config_map_manifest_matches_what_the_tasks_read():
    """A required key missing from the ConfigMap would leave every pod unable to start; a key
    the tasks do not map would be set in the cluster and silently ignored."""
    doc = yaml.safe_load((ROOT / "manifests" / "pipeline" / "configmap.yaml").read_text())
    keys = set(doc["data"])
    assert doc["metadata"]["name"] == "slipway-config"
    assert set(REQUIRED_CONFIG_KEYS) <= keys
    assert keys <= set(REQUIRED_CONFIG_KEYS) | set(OPTIONAL_CONFIG_KEYS)


def test_pod_labels_and_annotations(compiled):
    _, k8s = compiled
    for step in STEPS:
        meta = k8s["deploymentSpec"]["executors"][f"exec-{step}"]["podMetadata"]
        assert meta["labels"] == {
            "app.kubernetes.io/name": "slipway-training",
            "app.kubernetes.io/part-of": "slipway",
            "app.kubernetes.io/component": "training-pipeline",
            "app.kubernetes.io/version": "0123abcd",
            "slipway.io/step": step,
        }
        assert meta["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
        assert meta["annotations"]["karpenter.sh/do-not-disrupt"] == "true"


def test_no_secret_node_selector_or_toleration_by_default(compiled):
    """S3 access comes from IRSA (the run's service account), not from a Secret."""
    _, k8s = compiled
    for name, executor in k8s["deploymentSpec"]["executors"].items():
        assert not {"secretAsEnv", "nodeSelector", "tolerations", "secretAsVolume"} & set(
            executor
        ), name


def test_node_selector_tolerations_and_secrets_from_configuration(tmp_path):
    _, k8s = _compile(
        tmp_path,
        node_selector={"workload": "ml-training"},
        tolerations=(Toleration(key="dedicated", value="ml", effect="NoSchedule"),),
        secrets=(
            SecretEnv(
                secret_name="dvc-git-credentials",
                key_to_env={"token": "GIT_TOKEN"},
                steps=("pull-data",),
            ),
        ),
    )
    executors = k8s["deploymentSpec"]["executors"]
    for step in STEPS:
        executor = executors[f"exec-{step}"]
        assert executor["nodeSelector"] == {"labels": {"workload": "ml-training"}}
        assert executor["tolerations"] == [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ]
    secret = executors["exec-pull-data"]["secretAsEnv"]
    assert secret[0]["secretName"] == "dvc-git-credentials"
    assert secret[0]["keyToEnv"] == [{"secretKey": "token", "envVar": "GIT_TOKEN"}]
    assert all("secretAsEnv" not in executors[f"exec-{s}"] for s in STEPS if s != "pull-data")


def test_committed_yaml_has_the_platform_section():
    """The file the dashboard uploads (and `slipway run` executes) holds the same settings."""
    spec, platform_doc = yaml.safe_load_all(COMPILED.read_text())
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{step}" for step in STEPS}
    assert executors["exec-search"]["activeDeadlineSeconds"] == "7200"
    assert spec["pipelineInfo"]["name"] == "slipway-training"


def test_the_sharded_search_fans_out_in_a_sub_dag_and_fans_in_after_it(compiled):
    """No dsl.Collected: the reduce (search) depends on the whole search-fan-out sub-DAG."""
    spec, _ = compiled
    root = spec["root"]
    assert root["inputDefinitions"]["parameters"]["search_shards"]["defaultValue"] == 1
    tasks = root["dag"]["tasks"]
    assert sorted(tasks["search"]["dependentTasks"]) == ["pull-data", "search-fan-out"]
    assert tasks["search-fan-out"]["dependentTasks"] == ["pull-data", "validate-data"]
    assert "Collected" not in COMPILED.read_text()
    fan_out = spec["components"]["comp-search-fan-out"]["dag"]["tasks"]
    (condition,) = fan_out.values()
    assert condition["triggerPolicy"]["condition"] == (
        "int(inputs.parameter_values['pipelinechannel--search_shards']) > 1"
    )
    branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    loop = next(t for name, t in branch.items() if name.startswith("for-loop-"))
    assert loop["iteratorPolicy"]["parallelismLimit"] == 4
    assert loop["parameterIterator"]["items"]["inputParameter"] == (
        "pipelinechannel--search-plan-Output"
    )
    assert loop["dependentTasks"] == ["search-plan"]
    # every task of a sharded search names the same Kubeflow run, which tags the MLflow run
    for task in (branch["search-plan"], tasks["search"]):
        pipeline_run = task["inputs"]["parameters"]["pipeline_run"]
        assert pipeline_run["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
