"""PlatformConfig refuses values Kubernetes or KFP would reject, before anything is compiled."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.platform_config import (
    STEPS,
    PlatformConfig,
    Retry,
    SecretEnv,
    TaskResources,
    platform_config_for,
)


def test_defaults_cover_every_step_and_retry_only_io():
    config = platform_config_for("slipway-components:0.1.0")
    assert set(config.resources) == set(STEPS)
    assert set(config.retries) == {"pull-data", "search-shard", "promote"}
    assert config.config_map == "slipway-config"
    assert config.node_selector == {}
    assert config.tolerations == ()
    assert config.secrets == ()
    assert config.pod_labels["app.kubernetes.io/version"] == "0.1.0"


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("registry:5000/team/slipway-components:abc", "abc"),
        ("registry:5000/slipway-components", "latest"),
    ],
)
def test_version_label_is_the_image_tag(image, version):
    assert platform_config_for(image).pod_labels["app.kubernetes.io/version"] == version


def test_rejects_a_bad_quantity():
    with pytest.raises(ValidationError, match="'2 GB' is not a Kubernetes quantity"):
        TaskResources(
            cpu_request="1",
            cpu_limit="2",
            memory_request="2 GB",
            memory_limit="4Gi",
            timeout_seconds=60,
        )


def test_rejects_a_missing_or_unknown_step():
    resources = dict(platform_config_for("x:1").resources)
    search = resources.pop("search")
    with pytest.raises(ValidationError, match=r"resources lack steps \['search'\]"):
        PlatformConfig(resources=resources)
    with pytest.raises(ValidationError, match=r"unknown steps \['train'\]"):
        PlatformConfig(retries={"train": Retry(num_retries=1)})
    with pytest.raises(ValidationError, match=r"unknown steps \['train'\]"):
        SecretEnv(secret_name="s", key_to_env={"a": "A"}, steps=("train",))
    assert search.cpu_limit == "2"


def test_rejects_invalid_labels_and_a_zero_deadline():
    with pytest.raises(ValidationError, match="invalid Kubernetes label"):
        platform_config_for("x:1", node_selector={"pool": "not valid!"})
    with pytest.raises(ValidationError, match="invalid Kubernetes label"):
        platform_config_for("x:1-dirty+local")
    with pytest.raises(ValidationError, match="greater than 0"):
        TaskResources(
            cpu_request="1",
            cpu_limit="1",
            memory_request="1Gi",
            memory_limit="1Gi",
            timeout_seconds=0,
        )
