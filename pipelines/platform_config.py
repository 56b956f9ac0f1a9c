"""Kubernetes settings of the ``slipway-training`` tasks, applied at compile time.

The pipeline function only wires tasks; each task then goes through :func:`apply_platform`,
which writes what Kubernetes needs into the compiled YAML from one typed
:class:`PlatformConfig`:

- CPU/memory requests and limits per step (``search`` is the big one);
- ``SLIPWAY_*`` settings from the ConfigMap ``slipway-config`` (``manifests/pipeline``), so a pod
  gets the cluster's MLflow, bucket and DVC remote instead of the embedded defaults;
- optional Secrets as environment variables (none by default: S3 access comes from IRSA, the
  service account ``slipway-pipeline`` that the *run* is started with, see docs/eks.md);
- optional node selector and tolerations (none by default);
- a per-task deadline (pod ``activeDeadlineSeconds``), retries with backoff on I/O steps only;
- pod labels and annotations;
- caching off on every task (see :data:`CACHING_ENABLED`).

Only fields that KFP backends 2.x have long understood are used: no ``securityContext`` (the image
already runs as uid 10001) and no pipeline-level ``PipelineConfig`` (new in kfp 2.15+; a backend
older than the SDK rejects unknown fields of the platform spec).

``kfp.local`` (``slipway run``) honours resources only as metadata and ignores the platform spec.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STEPS = (
    "pull-data",
    "validate-data",
    "search-plan",
    "search-shard",
    "search",
    "evaluate",
    "promote",
)

# Caching stays off for every task, and is not configurable: KFP's cache key is the task's inputs,
# and ours do not identify the data or the state they act on. `dataset_rev` may name a moving
# branch (HEAD), so a hit on pull-data would serve a stale dataset; search, evaluate and promote
# write to MLflow, the registry and the model store, and evaluate compares with the *current*
# champion, so a hit would skip real side effects or reuse a stale comparison.
CACHING_ENABLED = False

# The settings every task reads; the ConfigMap must hold each key (a missing required key keeps
# the pod in CreateContainerConfigError, which is what we want: without them a pod would silently
# train against an embedded SQLite store inside the container and lose everything).
REQUIRED_CONFIG_KEYS = (
    "SLIPWAY_TRACKING_URI",
    "SLIPWAY_EXPERIMENT_NAME",
    "SLIPWAY_MODEL_NAME",
    "SLIPWAY_MODEL_STORE_URL",
    "SLIPWAY_DVC_REMOTE_URL",
    "SLIPWAY_DVC_REPO",
    "SLIPWAY_AWS_REGION",
)
# Used when present (optional=True: an absent key leaves the variable unset).
OPTIONAL_CONFIG_KEYS = ("SLIPWAY_PUSHGATEWAY_URL", "SLIPWAY_AWS_ENDPOINT_URL")

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$|^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskResources(_Model):
    """Requests, limits and deadline of one step's pod."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    timeout_seconds: int = Field(gt=0, description="pod activeDeadlineSeconds, per attempt")

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity such as '500m', '2' or '1Gi'")
        return value


class Retry(_Model):
    """KFP retry policy: attempts after the first, and the exponential backoff between them."""

    num_retries: int = Field(ge=1, le=10)
    backoff_duration: str = Field("30s", pattern=r"^[0-9]+s$")
    backoff_factor: float = Field(2.0, ge=1.0)
    backoff_max_duration: str = Field("3600s", pattern=r"^[0-9]+s$")


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoExecute", "NoSchedule", "PreferNoSchedule"] | None = None


class SecretEnv(_Model):
    """Keys of a Kubernetes Secret given to some steps as environment variables."""

    secret_name: str = Field(pattern=_DNS_NAME.pattern)
    key_to_env: dict[str, str] = Field(min_length=1)
    steps: tuple[str, ...] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(steps) - set(STEPS))
        if unknown:
            raise ValueError(f"unknown steps {unknown}; use some of {list(STEPS)}")
        return steps


def _default_resources() -> dict[str, TaskResources]:
    # Sized from local runs on 569 rows (docs/eks.md "Resources"): importing mlflow + sklearn
    # takes ~400 MB; search fits grids with n_jobs from params.yaml (1 by default) and refits
    # whole pipelines, so it gets the largest share and the longest deadline.
    small = {"cpu_request": "250m", "cpu_limit": "1", "memory_request": "512Mi"}
    return {
        "pull-data": TaskResources(**small, memory_limit="1Gi", timeout_seconds=900),
        "validate-data": TaskResources(**small, memory_limit="1Gi", timeout_seconds=600),
        # a sharded search (search_shards > 1): the plan only creates the MLflow run; each shard
        # fits its slice of the grid in one process, like search does the whole grid
        "search-plan": TaskResources(**small, memory_limit="1Gi", timeout_seconds=900),
        "search-shard": TaskResources(
            cpu_request="1",
            cpu_limit="2",
            memory_request="2Gi",
            memory_limit="4Gi",
            timeout_seconds=7200,
        ),
        "search": TaskResources(
            cpu_request="1",
            cpu_limit="2",
            memory_request="2Gi",
            memory_limit="4Gi",
            timeout_seconds=7200,
        ),
        "evaluate": TaskResources(
            cpu_request="500m",
            cpu_limit="1",
            memory_request="1Gi",
            memory_limit="2Gi",
            timeout_seconds=1800,
        ),
        "promote": TaskResources(
            cpu_request="250m",
            cpu_limit="1",
            memory_request="1Gi",
            memory_limit="2Gi",
            timeout_seconds=900,
        ),
    }


def _default_retries() -> dict[str, Retry]:
    # Only the steps whose failures are mostly transient I/O: pull-data (git + S3 through DVC) and
    # promote (registry, S3 put; promote_candidate is idempotent for one run id). search and
    # evaluate are deterministic compute: a retry would fail the same way and double the cost.
    # A search shard is retried once: one of many pods is the likeliest to meet a lost node or
    # an evicted pod, and a shard rewrites its whole result (shards/shard-<i>.json) on a retry.
    return {
        "pull-data": Retry(num_retries=3, backoff_duration="30s", backoff_factor=2),
        "search-shard": Retry(num_retries=1, backoff_duration="30s", backoff_factor=2),
        "promote": Retry(num_retries=2, backoff_duration="30s", backoff_factor=2),
    }


class PlatformConfig(_Model):
    """Everything Kubernetes-specific in the compiled ``slipway-training`` YAML."""

    config_map: str | None = Field(
        "slipway-config", description="ConfigMap with SLIPWAY_* settings; None = none"
    )
    resources: dict[str, TaskResources] = Field(default_factory=_default_resources)
    retries: dict[str, Retry] = Field(default_factory=_default_retries)
    secrets: tuple[SecretEnv, ...] = ()
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    pod_labels: dict[str, str] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PlatformConfig:
        missing = sorted(set(STEPS) - set(self.resources))
        unknown = sorted((set(self.resources) | set(self.retries)) - set(STEPS))
        if missing:
            raise ValueError(f"resources lack steps {missing}; every step needs its own")
        if unknown:
            raise ValueError(f"unknown steps {unknown}; use some of {list(STEPS)}")
        for name, value in {**self.node_selector, **self.pod_labels}.items():
            if not _QUALIFIED_NAME.match(name) or not _LABEL_VALUE.match(value):
                raise ValueError(f"invalid Kubernetes label {name}={value!r}")
        for name in self.pod_annotations:
            if not _QUALIFIED_NAME.match(name):
                raise ValueError(f"invalid Kubernetes annotation key {name!r}")
        return self


def platform_config_for(image: str, **overrides: Any) -> PlatformConfig:
    """The default configuration for the component image being compiled, with ``overrides``.

    Args:
        image: ``Settings.component_image``; its tag becomes the pods'
            ``app.kubernetes.io/version`` label.
        **overrides: any :class:`PlatformConfig` field, e.g. ``node_selector={...}``.

    Returns:
        The validated configuration.

    Raises:
        pydantic.ValidationError: a value is not valid for Kubernetes; the message names it.
    """
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "latest"
    labels = {
        "app.kubernetes.io/name": "slipway-training",
        "app.kubernetes.io/part-of": "slipway",
        "app.kubernetes.io/component": "training-pipeline",
        "app.kubernetes.io/version": tag,
    }
    annotations = {
        # a scale-down must not kill a 2-hour grid search half-way (cluster-autoscaler, Karpenter)
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        "karpenter.sh/do-not-disrupt": "true",
    }
    values: dict[str, Any] = {"pod_labels": labels, "pod_annotations": annotations}
    values.update(overrides)
    return PlatformConfig(**values)


def apply_platform(task: Any, step: str, config: PlatformConfig) -> Any:
    """Write ``config``'s settings for ``step`` onto the KFP ``task``; returns the task."""
    from kfp import kubernetes

    res = config.resources[step]
    task.set_caching_options(CACHING_ENABLED)
    task.set_cpu_request(res.cpu_request).set_cpu_limit(res.cpu_limit)
    task.set_memory_request(res.memory_request).set_memory_limit(res.memory_limit)
    kubernetes.set_timeout(task, res.timeout_seconds)
    if step in config.retries:
        retry = config.retries[step]
        task.set_retry(
            num_retries=retry.num_retries,
            backoff_duration=retry.backoff_duration,
            backoff_factor=retry.backoff_factor,
            backoff_max_duration=retry.backoff_max_duration,
        )
    if config.config_map:
        kubernetes.use_config_map_as_env(
            task, config.config_map, {key: key for key in REQUIRED_CONFIG_KEYS}
        )
        kubernetes.use_config_map_as_env(
            task, config.config_map, {key: key for key in OPTIONAL_CONFIG_KEYS}, optional=True
        )
    for secret in config.secrets:
        if step in secret.steps:
            kubernetes.use_secret_as_env(task, secret.secret_name, dict(secret.key_to_env))
    for key, value in sorted(config.node_selector.items()):
        kubernetes.add_node_selector(task, key, value)
    for tol in config.tolerations:
        kubernetes.add_toleration(
            task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect
        )
    for key, value in sorted({**config.pod_labels, "slipway.io/step": step}.items()):
        kubernetes.add_pod_label(task, key, value)
    for key, value in sorted(config.pod_annotations.items()):
        kubernetes.add_pod_annotation(task, key, value)
    return task
