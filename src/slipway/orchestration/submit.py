"""Upload the compiled pipeline to a Kubeflow Pipelines endpoint, then run or schedule it.

``slipway submit`` (``make submit``) calls :func:`connect` and :func:`submit_pipeline`. The YAML
uploaded is the compiled file (by default the committed ``pipelines/training_pipeline.yaml``, which
must name the component image the current settings give); it becomes a new version of the pipeline
``slipway-training``, named after the git commit. Runs use the service account
``slipway-pipeline`` (IRSA, ``manifests/pipeline``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slipway.errors import ConfigError, SubmitError

PIPELINE_NAME = "slipway-training"
SERVICE_ACCOUNT = "slipway-pipeline"
SCHEDULE_NAME = "slipway-training-schedule"
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#LW-]+$")


@dataclass(frozen=True)
class PipelinePackage:
    """A compiled pipeline file, checked before anything is uploaded."""

    path: Path
    name: str
    parameters: tuple[str, ...]
    images: tuple[str, ...]


@dataclass(frozen=True)
class SubmitPlan:
    """What to upload, and what to start with it (a run, a schedule, or nothing)."""

    package: PipelinePackage
    version_name: str
    experiment: str
    params: Mapping[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    run_name: str | None = None
    cron: str | None = None
    upload_only: bool = False
    service_account: str = SERVICE_ACCOUNT


@dataclass
class SubmitResult:
    """What a submit created or found on the Kubeflow Pipelines endpoint."""

    pipeline_id: str
    version_id: str
    version_created: bool
    experiment_id: str | None = None
    run_id: str | None = None
    recurring_run_id: str | None = None
    disabled_schedules: list[str] = field(default_factory=list)


def connect(
    host: str | None,
    *,
    namespace: str | None = None,
    token: str | None = None,
    token_path: Path | None = None,
    cookie: str | None = None,
    client_factory: Callable[..., Any] | None = None,
) -> Any:
    """A ``kfp.Client`` for ``host``, authenticated by a bearer token or a session cookie.

    Args:
        host: the KFP API, e.g. ``https://kubeflow.example.com/pipeline`` (``SLIPWAY_KFP_HOST``).
        namespace: the Kubeflow profile namespace runs and experiments go to.
        token: a bearer token (e.g. a service account token).
        token_path: a file holding the token (what ``KF_PIPELINES_SA_TOKEN_PATH`` names).
        cookie: ``authservice_session=...`` for Dex (oauth2-proxy) or Cognito front ends.
        client_factory: ``kfp.Client`` unless a test passes a fake.

    Raises:
        ConfigError: no host, both a token and a cookie, or an unreadable token file.
    """
    if not host:
        raise ConfigError(
            "no Kubeflow Pipelines endpoint: set SLIPWAY_KFP_HOST or pass --host, e.g. "
            "https://kubeflow.example.com/pipeline"
        )
    if token_path is not None and token is None:
        try:
            token = token_path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read the KFP token file {token_path}: {e.strerror}") from e
    if token and cookie:
        raise ConfigError("pass a token or a session cookie, not both (--token/--cookie)")
    if cookie is not None and "=" not in cookie:
        raise ConfigError(
            f"cookie {cookie[:20]!r}... must be NAME=VALUE, e.g. authservice_session=…"
        )
    if client_factory is None:
        from kfp.client import Client as client_factory  # not `kfp.Client`: import_kfp_sdk
    kwargs: dict[str, Any] = {"host": host, "existing_token": token or None, "cookies": cookie}
    if namespace:
        kwargs["namespace"] = namespace
    # kfp.Client already calls the API (healthz) while it is built
    return _call("connect", client_factory, **kwargs)


def read_package(
    path: Path, expected_image: str, pipeline_name: str = PIPELINE_NAME
) -> PipelinePackage:
    """Read a compiled pipeline and check it is ``pipeline_name`` running ``expected_image``.

    Raises:
        ConfigError: the file is missing, not a compiled KFP pipeline, another pipeline, or
            compiled for another image (then the tasks would run code you did not mean to ship).
    """
    try:
        spec = next(yaml.safe_load_all(path.read_text()))
        name = spec["pipelineInfo"]["name"]
        executors = spec["deploymentSpec"]["executors"]
        parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as e:
        raise ConfigError(
            f"{path} is not a compiled pipeline ({e}); run `make compile-pipeline`"
        ) from e
    if name != pipeline_name:
        raise ConfigError(f"{path} holds pipeline {name!r}, not {pipeline_name!r}")
    images = tuple(sorted({e["container"]["image"] for e in executors.values()}))
    if images != (expected_image,):
        raise ConfigError(
            f"{path} runs image(s) {list(images)} but the settings give {expected_image!r}; "
            "compile with the same SLIPWAY_IMAGE_REGISTRY/SLIPWAY_IMAGE_TAG "
            "(`make compile-pipeline`) before submitting"
        )
    return PipelinePackage(path, name, tuple(parameters), images)


def resolve_version_name(explicit: str | None, git_commit: str | None) -> str:
    """The pipeline version name: ``explicit``, or the clean commit of this checkout.

    Raises:
        ConfigError: no usable name (uncommitted changes, no git, or a malformed name).
    """
    name = explicit or git_commit or "unknown"
    if explicit is None and name == "unknown":
        raise ConfigError("no git commit known; set SLIPWAY_GIT_COMMIT or pass --version-name")
    if explicit is None and name.endswith("-dirty"):
        raise ConfigError(
            f"the checkout has uncommitted changes (commit {name!r}); commit them, or name the "
            "version with --version-name"
        )
    if not _VERSION_NAME.fullmatch(name):
        raise ConfigError(f"version name {name!r} must match {_VERSION_NAME.pattern}")
    return name


def parse_params(pairs: Iterable[str], allowed: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs to run parameters; a value that parses as JSON is taken as JSON.

    Raises:
        ConfigError: a pair without ``=``, or a key the pipeline does not declare.
    """
    allowed = tuple(allowed)
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r} must be KEY=VALUE, e.g. dataset_version=v2")
        if key not in allowed:
            raise ConfigError(
                f"--param {key!r} is not a pipeline parameter; use one of {list(allowed)}"
            )
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def to_kfp_cron(expression: str) -> str:
    """A cron expression as KFP wants it: 6 fields, seconds first (``0 3 * * *`` -> ``0 0 3 * * *``).

    Raises:
        ConfigError: not 5 or 6 fields, or a field with characters cron does not use.
    """
    fields = expression.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ConfigError(
            f"--cron {expression!r} is not a cron expression; use 5 fields "
            "(minute hour day month weekday, e.g. '0 3 * * *') or 6 with seconds first"
        )
    return " ".join(["0", *fields] if len(fields) == 5 else fields)


def submit_pipeline(client: Any, plan: SubmitPlan) -> SubmitResult:
    """Upload ``plan.package`` as a version, then start a run or a schedule.

    The pipeline is created if missing; a version of the same name is reused (a rerun for one
    commit uploads nothing new). With ``plan.cron``, the new schedule is created first, then the
    other enabled schedules of the same name in the experiment are disabled, so one schedule
    runs, pinned to the newest version, and a failed creation leaves the old one running.

    Raises:
        SubmitError: the KFP API refused a call; the message says which and what to check.
    """
    package = plan.package
    pipeline_id = _call("look up the pipeline", client.get_pipeline_id, package.name)
    created = False
    if pipeline_id is None:
        pipeline = _call(
            "upload the pipeline",
            client.upload_pipeline,
            pipeline_package_path=str(package.path),
            pipeline_name=package.name,
            description="slipway: train, evaluate against the champion, promote",
        )
        pipeline_id = pipeline.pipeline_id
    version_id = _find_version(client, pipeline_id, plan.version_name)
    if version_id is None:
        version = _call(
            "upload the pipeline version",
            client.upload_pipeline_version,
            pipeline_package_path=str(package.path),
            pipeline_version_name=plan.version_name,
            pipeline_id=pipeline_id,
        )
        version_id, created = version.pipeline_version_id, True
    result = SubmitResult(pipeline_id, version_id, created)
    if plan.upload_only:
        return result
    experiment = _call(
        "get or create the experiment",
        client.create_experiment,
        name=plan.experiment,
        namespace=plan.namespace,
    )
    result.experiment_id = experiment.experiment_id
    common = {
        "experiment_id": experiment.experiment_id,
        "params": dict(plan.params),
        "pipeline_id": pipeline_id,
        "version_id": version_id,
        "service_account": plan.service_account,
    }
    if plan.cron is None:
        name = plan.run_name or f"{package.name} {plan.version_name[:12]}"
        run = _call("start the run", client.run_pipeline, job_name=name, **common)
        result.run_id = run.run_id
        return result
    name = plan.run_name or SCHEDULE_NAME
    recurring = _call(
        "create the recurring run",
        client.create_recurring_run,
        job_name=name,
        description=f"{package.name} version {plan.version_name}, cron {plan.cron}",
        cron_expression=to_kfp_cron(plan.cron),
        max_concurrency=1,
        no_catchup=True,
        enabled=True,
        **common,
    )
    result.recurring_run_id = recurring.recurring_run_id
    try:
        result.disabled_schedules = _disable_schedules(
            client, experiment.experiment_id, name, keep=recurring.recurring_run_id
        )
    except SubmitError as e:
        raise SubmitError(
            f"created schedule {name!r} ({recurring.recurring_run_id}) for version "
            f"{plan.version_name}, but the older schedules of that name may still be enabled: "
            f"{e}; rerun the same command to disable them"
        ) from e
    return result


def _name_filter(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )


def _find_version(client: Any, pipeline_id: str, name: str) -> str | None:
    response = _call(
        "list the pipeline versions",
        client.list_pipeline_versions,
        pipeline_id=pipeline_id,
        filter=_name_filter(name),
    )
    versions = response.pipeline_versions or []
    return versions[0].pipeline_version_id if versions else None


def _disable_schedules(client: Any, experiment_id: str, name: str, keep: str) -> list[str]:
    """Disable the enabled recurring runs called ``name``, except ``keep``; return their ids."""
    response = _call(
        "list the recurring runs",
        client.list_recurring_runs,
        experiment_id=experiment_id,
        filter=_name_filter(name),
        page_size=100,
    )
    disabled = []
    for recurring in response.recurring_runs or []:
        if recurring.status == "ENABLED" and recurring.recurring_run_id != keep:
            _call(
                "disable the old schedule", client.disable_recurring_run, recurring.recurring_run_id
            )
            disabled.append(recurring.recurring_run_id)
    return disabled


def _call(what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the KFP client, turning its API and connection errors into one SubmitError."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return method(*args, **kwargs)
    except ApiException as e:
        hint = {
            401: "authenticate with --token/--token-path, or --cookie authservice_session=...",
            403: "the identity may not do this in that namespace (check --namespace and profile access)",
            404: "check the host: it must be the KFP API root, e.g. https://<kubeflow>/pipeline",
        }.get(e.status, "see the KFP API server log")
        raise SubmitError(f"the KFP API refused to {what}: {e.status} {e.reason}; {hint}") from e
    except (HTTPError, OSError) as e:
        raise SubmitError(
            f"could not reach the KFP API to {what} ({type(e).__name__}); check SLIPWAY_KFP_HOST "
            "and the network path (port-forward, VPN, ingress)"
        ) from e
