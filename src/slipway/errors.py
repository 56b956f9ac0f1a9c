"""The exceptions slipway raises.

One base class, and a few specific subclasses that also inherit the matching builtin, so that
callers can catch either ``SlipwayError`` or the builtin they already expect. Every message says
what was wrong, the value received and how to fix it.
"""

from __future__ import annotations


class SlipwayError(Exception):
    """Base class of every error slipway raises on purpose."""


class ConfigError(SlipwayError, ValueError):
    """A setting or a ``params.yaml`` value is missing or malformed."""


class DatasetVersionError(SlipwayError, LookupError):
    """The requested dataset version is unknown, or its content does not match its hash."""


class DatasetValidationError(SlipwayError, ValueError):
    """The dataset broke its schema; ``report`` lists every violation."""

    def __init__(self, message: str, report: str = "") -> None:
        super().__init__(message)
        self.report = report


class RemoteUnavailableError(SlipwayError, ConnectionError):
    """A storage remote (DVC remote, S3, MLflow server) could not be reached."""


class ModelPackageError(SlipwayError, ValueError):
    """A model package is missing, incomplete or fails its checksum."""


class VersionExistsError(SlipwayError, FileExistsError):
    """A model version code is already in the store; versions are never overwritten."""


class RegistryError(SlipwayError, RuntimeError):
    """The MLflow registry is not in the state an operation expects."""


class KubectlError(SlipwayError, RuntimeError):
    """kubectl is missing, timed out, or a kubectl command failed (its message included)."""


class RolloutError(SlipwayError, RuntimeError):
    """A deploy or rollback stopped part-way; the message says what is left and how to finish."""


class CloudWatchApplyError(SlipwayError, RuntimeError):
    """A CloudWatch call failed while reading or applying alarms or the dashboard.

    The message names the alarm (or dashboard) and what was applied before the failure.
    """


class KpiCatalogError(SlipwayError, ValueError):
    """The KPI catalog is malformed, or points at a runbook heading that does not exist."""


class PipelineRunError(SlipwayError, RuntimeError):
    """A task of the local pipeline run failed; the message names it.

    Attributes:
        failed_task: the innermost task that failed (e.g. ``validate-data``), or ``None`` when
            kfp did not name one.
    """

    def __init__(self, message: str, failed_task: str | None = None) -> None:
        super().__init__(message)
        self.failed_task = failed_task


class ShardFailedError(SlipwayError, RuntimeError):
    """A shard of a sharded search could not fit its slice; names the shard and its candidates."""


class BucketVersioningError(ConfigError):
    """The model store's bucket does not keep object versions."""


class SubmitError(SlipwayError, RuntimeError):
    """The Kubeflow Pipelines API refused a call or could not be reached."""


class KubectlNotFoundError(KubectlError):
    """The kubectl executable is not installed (or not at the path given)."""


class DatasetSpecError(SlipwayError, ValueError):
    """A dataset spec (``data/<dataset>/dataset.yaml``) is missing, malformed or contradicts itself.

    The message names the file, the field, the value received and the fix.
    """
