"""The one configuration object, built at each entry point and passed down.

Every setting is read from an environment variable ``SLIPWAY_<NAME>`` (or a ``.env`` file) with
a type and a default. The defaults are the *embedded* deployment: everything lives under a local
state folder. Production differs only by configuration, for example::

    SLIPWAY_TRACKING_URI=http://mlflow.mlflow:5000
    SLIPWAY_MODEL_STORE_URL=s3://acme-ml/models
    SLIPWAY_DVC_REMOTE_URL=s3://acme-ml/dvc

Library code never reads ``os.environ``; it receives a :class:`Settings`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from slipway.errors import ConfigError
from slipway.versions import VersionCode

PACKAGE_VERSION = "0.1.0"

#: The compiled training pipeline, relative to the project checkout (committed; what the
#: Kubeflow dashboard uploads and what ``slipway run`` executes).
COMPILED_PIPELINE = Path("pipelines") / "training_pipeline.yaml"
#: The dataset ``slipway run`` and the compiled pipeline use when none is given.
DEFAULT_DATASET = "breast-cancer"
#: The version of it that they use when none is given (here, not beside the table's versions in
#: ``slipway.data.table``, so that the pipeline definition and ``slipway run``'s request need
#: no pandas for it: docs/pipeline.md, "Where a local run's time goes").
DEFAULT_DATASET_VERSION = "v2"

#: A version-code setting: parsed by :meth:`VersionCode.parse` (the one validator), written back
#: as its text (``as_env``, ``model_dump``).
VersionCodeField = Annotated[
    VersionCode,
    PlainValidator(VersionCode.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "v<registry version>-<YYYYMMDD>-<8 hex>"}),
]


class Settings(BaseSettings):
    """Where slipway keeps things and how it reaches its backends.

    Fields left at ``None`` are derived from ``state_dir`` after validation, so that setting
    ``SLIPWAY_STATE_DIR`` alone moves the whole embedded deployment.
    """

    model_config = SettingsConfigDict(
        # "ignore": a .env shared with AWS_* / MLFLOW_* lines must not break every command;
        # unknown keyword overrides are still refused in load_settings
        env_prefix="SLIPWAY_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    state_dir: Path = Field(Path(".slipway"), description="Local state folder (embedded default).")
    project_dir: Path = Field(Path("."), description="The project checkout (params.yaml, data/).")
    tracking_uri: str | None = Field(None, description="MLflow tracking and registry URI.")
    experiment_name: str = "slipway"
    model_name: str = Field("slipway", pattern=r"^[a-z][a-z0-9-]{0,62}$")
    model_store_url: str | None = Field(None, description="Root of model packages (path or s3://).")
    efs_root: Path | None = Field(None, description="The EFS mount (a folder here).")
    dvc_repo: str | None = Field(None, description="DVC project: a path or a git URL.")
    dvc_remote_url: str | None = Field(
        None, description="DVC remote: a path or s3://bucket/prefix."
    )
    aws_endpoint_url: str | None = Field(None, description="AWS endpoint (moto server in tests).")
    aws_region: str = "us-east-1"
    image_registry: str = Field("", description="Registry prefix, e.g. 1234.dkr.ecr.../")
    image_tag: str = PACKAGE_VERSION
    git_commit: str | None = Field(None, description="Code version; found with git if unset.")
    pushgateway_url: str | None = Field(
        None, description="Prometheus Pushgateway for pipeline metrics."
    )
    efs_keep_versions: int = Field(
        10,
        ge=1,
        description="Versions kept on EFS; values below 10 (revisionHistoryLimit) act as 10.",
    )
    idempotency_table: str | None = Field(
        None, description="DynamoDB table of the efs-sync Lambda."
    )
    model_version: VersionCodeField | None = Field(
        None,
        # the pod template pins MODEL_VERSION once; SLIPWAY_MODEL_VERSION wins where both are set
        validation_alias=AliasChoices("SLIPWAY_MODEL_VERSION", "MODEL_VERSION", "model_version"),
        description="Version code the model server serves (SLIPWAY_MODEL_VERSION or MODEL_VERSION).",
    )
    namespace: str = Field(
        "slipway",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Kubernetes namespace of the model server (deploy, rollback).",
    )
    kfp_host: str | None = Field(None, description="Kubeflow Pipelines API endpoint for `submit`.")
    alarm_topic_arn: str | None = Field(None, description="SNS topic that KPI alarms notify.")

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        state = self.state_dir.expanduser().resolve()
        project = self.project_dir.expanduser().resolve()
        # frozen model: fill derived values through object.__setattr__ once, at construction
        derived: dict[str, Any] = {
            "state_dir": state,
            "project_dir": project,
            "tracking_uri": self.tracking_uri or f"sqlite:///{state / 'mlflow.db'}",
            "model_store_url": self.model_store_url or str(state / "store" / "models"),
            "efs_root": (self.efs_root or state / "efs").expanduser().resolve(),
            "dvc_repo": self.dvc_repo or str(project),
            "dvc_remote_url": self.dvc_remote_url or str(state / "dvc-remote"),
            "git_commit": self.git_commit or _git_commit(project),
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)
        return self

    @property
    def artifact_root(self) -> str:
        """Where MLflow stores artifacts when the tracking URI is a local database."""
        return str(self.state_dir / "mlartifacts")

    @property
    def params_file(self) -> Path:
        """The project's ``params.yaml`` (grids and thresholds, one section per step)."""
        return self.project_dir / "params.yaml"

    @property
    def compiled_pipeline(self) -> Path:
        """The committed compiled pipeline YAML of the project checkout."""
        return self.project_dir / COMPILED_PIPELINE

    def image(self, name: str, tag: str | None = None) -> str:
        """Full image reference, e.g. ``image("slipway-components")``."""
        return f"{self.image_registry}{name}:{tag or self.image_tag}"

    @property
    def component_image(self) -> str:
        """Full reference of the pipeline component image (``slipway-components``)."""
        return self.image("slipway-components")

    @property
    def server_image(self) -> str:
        """Full reference of the model server image (``slipway-server``)."""
        return self.image("slipway-server")

    def as_env(self) -> dict[str, str]:
        """The settings as ``SLIPWAY_*`` variables, to hand to a subprocess or a pod."""
        env = {}
        for key, value in self.model_dump().items():
            if value is not None:
                env[f"SLIPWAY_{key.upper()}"] = str(value)
        return env


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings` from the environment, turning validation errors into one sentence.

    Raises:
        ConfigError: a variable is malformed; the message names it and the value received.
    """
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known: {sorted(Settings.model_fields)}")
    try:
        return Settings(**overrides)
    except ValidationError as e:
        problems = "; ".join(
            f"{_variable(err['loc'])}={err.get('input')!r}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from e


def model_name_for(dataset: str, base: str, explicit: str | None = None) -> str:
    """The registered model that dataset ``dataset`` trains: one model name per dataset.

    The rule, in order: ``explicit`` (the spec's ``model_name``) when set; ``base``
    (``SLIPWAY_MODEL_NAME``) for the default dataset, breast-cancer, so existing registries keep
    their champion; otherwise ``<base>-<dataset>`` with ``_`` as ``-`` (``slipway-penguins``).
    """
    if explicit:
        return explicit
    if dataset == DEFAULT_DATASET:
        return base
    return f"{base}-{dataset.replace('_', '-')}"[:63].rstrip("-")


def settings_for(settings: Settings, metadata: Mapping[str, Any]) -> Settings:
    """``settings`` with the model name of the dataset a pipeline step received.

    Components call ``settings = settings_for(load_settings(), dataset.metadata)``; the dataset
    artifact's metadata holds the spec pull-data read (``metadata["spec"]``, with its ``name``
    and optional ``model_name``).

    Raises:
        DatasetSpecError: the metadata holds no spec (an artifact of an older pull-data).
    """
    from slipway.errors import DatasetSpecError

    spec = metadata.get("spec")
    if not isinstance(spec, Mapping) or not spec.get("name"):
        raise DatasetSpecError(
            "the dataset artifact's metadata has no 'spec' with a 'name'; it was written by a "
            "pull-data that predates dataset specs: rerun the whole pipeline"
        )
    name = model_name_for(str(spec["name"]), settings.model_name, spec.get("model_name"))
    if name == settings.model_name:
        return settings
    return settings.model_copy(update={"model_name": name})


def _variable(loc: tuple[Any, ...]) -> str:
    """The environment variable(s) behind a validation error's location."""
    name = "_".join(str(p) for p in loc)
    field = Settings.model_fields.get(name) or next(
        (f for f in Settings.model_fields.values() if _aliases(f) and name in _aliases(f)), None
    )
    if field is not None and _aliases(field):
        return " or ".join(a for a in _aliases(field) if a.isupper())
    return f"SLIPWAY_{name.upper()}"


def _aliases(field: Any) -> list[str]:
    alias = field.validation_alias
    return [str(a) for a in alias.choices] if isinstance(alias, AliasChoices) else []


def _git_commit(project: Path) -> str:
    """The checkout's commit, with ``-dirty`` when tracked files changed; ``unknown`` off git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


@contextmanager
def scoped_environ(changes: Mapping[str, str]) -> Iterator[None]:
    """Set ``changes`` in ``os.environ`` for the block, then restore every variable it touched.

    Args:
        changes: variable -> value; a variable absent before the block is removed after it.
    """
    previous = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
