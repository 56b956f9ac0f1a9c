"""The MLflow model registry: versions, the ``champion`` alias, and reading the champion back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from slipway.errors import ConfigError, RegistryError
from slipway.versions import VersionCode

CHAMPION = "champion"
TAG_VERSION_CODE = "version_code"


_MLFLOW_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def get_client(tracking_uri: str):
    """A client for the tracking server and registry at ``tracking_uri``; no global is set."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def mlflow_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (and registry) at ``tracking_uri`` for the block only.

    ``mlflow.start_run`` and ``mlflow.sklearn.log_model`` have no URI argument: they read the
    global URIs (which ``mlflow.set_tracking_uri`` also writes to ``MLFLOW_TRACKING_URI``). This
    sets both and, on exit, restores the previous globals and environment variables exactly.

    Args:
        tracking_uri: MLflow tracking and registry URI, ``settings.tracking_uri``.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {key: os.environ.get(key) for key in _MLFLOW_URI_ENV}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def get_alias_version(client: Any, name: str, alias: str = CHAMPION):
    """The model version an alias points at, or ``None`` (no model or no alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def champion_tags(client: Any, name: str) -> dict[str, str] | None:
    """The tags of model ``name``'s champion version (read-only), or ``None`` without one.

    ``dataset_version`` and ``dataset_md5`` say which data the champion was trained on.
    """
    version = get_alias_version(client, name, CHAMPION)
    return None if version is None else dict(version.tags)


def find_version_for_run(client: Any, name: str, run_id: str):
    """The registry version already made from ``run_id``, if any (promotion is idempotent).

    Errors other than "no such model" propagate: treating a failed search as "not found" would
    register a second version for the same run.
    """
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return min(found, key=lambda v: int(v.version)) if found else None


def register_version(client: Any, name: str, model_uri: str, run_id: str):
    """Register ``model_uri`` under ``name``, or return the version already made from the run."""
    from mlflow.exceptions import MlflowException

    existing = find_version_for_run(client, name, run_id)
    if existing is not None:
        return existing
    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # MLflow 3 logged models (models:/m-...): a tracking *server* refuses the source unless
    # model_id names the logged model (a local store resolves it by itself)
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    # the SQL registry store resolves a models:/m-... source through MLflow's *global* tracking
    # URI, not the client's: point it at the client's store for this one call
    with mlflow_tracking_uri(client.tracking_uri):
        version = client.create_model_version(name, model_uri, run_id=run_id, model_id=model_id)
    return client.get_model_version(name, version.version)


def move_alias(
    client: Any, name: str, version: str, expected: str | None, alias: str = CHAMPION
) -> None:
    """Point ``alias`` at ``version`` if it still points at ``expected``, then read it back.

    Read, compare, set, read back: if another run moved the alias since this run compared itself
    with the champion, the comparison is stale and nothing is changed.

    Raises:
        RegistryError: the alias moved meanwhile, or did not take.
    """
    version = str(version)
    expected = None if expected is None else str(expected)
    current = get_alias_version(client, name, alias)
    current_version = str(current.version) if current is not None else None
    if current_version == version:
        return
    if current_version != expected:
        raise RegistryError(
            f"alias {alias!r} of model {name!r} now points at version {current_version}, not "
            f"{expected} as when this candidate was evaluated; rerun the pipeline to compare "
            "against the new champion"
        )
    client.set_registered_model_alias(name, alias, version)
    after = get_alias_version(client, name, alias)
    if after is None or str(after.version) != version:
        raise RegistryError(f"alias {alias!r} of model {name!r} did not move to version {version}")


def champion_version_code(client: Any, name: str) -> tuple[str, VersionCode] | None:
    """``(registry version, version code)`` of the champion, or ``None`` without one.

    The ``version_code`` tag is parsed here, where it leaves the registry.

    Raises:
        RegistryError: the champion has no ``version_code`` tag, or a malformed one.
    """
    version = get_alias_version(client, name, CHAMPION)
    if version is None:
        return None
    code = version.tags.get(TAG_VERSION_CODE)
    if not code:
        raise RegistryError(
            f"champion version {version.version} of {name!r} has no {TAG_VERSION_CODE!r} tag; it "
            "was not promoted by slipway. Tag it or move the alias to a slipway version"
        )
    try:
        return str(version.version), VersionCode.parse(code)
    except ConfigError as e:
        raise RegistryError(
            f"champion version {version.version} of {name!r} has a malformed "
            f"{TAG_VERSION_CODE!r} tag: {e}. Fix the tag or move the alias to a slipway version"
        ) from e
