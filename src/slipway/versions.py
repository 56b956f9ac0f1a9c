"""Model version codes: ``v<registry version>-<YYYYMMDD>-<first 8 hex of the MLflow run id>``.

Example: ``v3-20261128-1f2e3d4c`` is registry version 3 of the model, promoted on 2026-11-28, from
MLflow run ``1f2e3d4c…``. The code is unique (registry versions are), readable, and a valid path
segment, Kubernetes label value and annotation, so it can name the EFS folder and sit in the
Deployment's pod template.

A code is parsed once where it enters (CLI option, environment variable, package manifest,
registry tag, overlay file) with :meth:`VersionCode.parse`, the one validator, and travels inward
as a :class:`VersionCode`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from slipway.errors import ConfigError

VERSION_CODE_PATTERN = r"^v(?P<registry>[1-9][0-9]*)-(?P<date>[0-9]{8})-(?P<run>[0-9a-f]{8})$"
_VERSION_CODE = re.compile(VERSION_CODE_PATTERN)
_RUN_PREFIX = re.compile(r"[0-9a-f]{8}")


class VersionCode(str):
    """A parsed, valid model version code; immutable, and its text where a ``str`` goes.

    It is a ``str`` subclass so that it can name a path segment, an MLflow tag, a JSON field or a
    Prometheus label without conversion (serving and the stores take it as a string); functions
    that need a *valid* code declare ``VersionCode``, and only :meth:`parse` (or the constructor,
    from its parts) makes one.

    Args:
        registry_version: The registry version of the model, ``>= 1``.
        promoted_on: The day it was promoted (UTC).
        run_prefix: The first 8 lowercase hex digits of the MLflow run id.

    Raises:
        ConfigError: a part is out of range.
    """

    __slots__ = ()

    def __new__(cls, registry_version: int, promoted_on: date, run_prefix: str) -> VersionCode:
        """Build a code from its parts (see the class docstring)."""
        if not isinstance(registry_version, int) or registry_version < 1:
            raise ConfigError(f"registry version must be >= 1, got {registry_version!r}")
        if not isinstance(run_prefix, str) or not _RUN_PREFIX.fullmatch(run_prefix):
            raise ConfigError(f"run prefix {run_prefix!r} is not 8 lowercase hex digits")
        return super().__new__(cls, f"v{registry_version}-{promoted_on:%Y%m%d}-{run_prefix}")

    @classmethod
    def parse(cls, code: Any) -> VersionCode:
        """Parse a version code; a :class:`VersionCode` is returned as it is.

        Args:
            code: The text, e.g. ``"v3-20261128-1f2e3d4c"``.

        Returns:
            The parsed code.

        Raises:
            ConfigError: ``code`` is not of the form ``v<n>-<YYYYMMDD>-<8 hex>``.
        """
        if isinstance(code, VersionCode):
            return code
        # fullmatch: with match or search, "$" would also accept a trailing newline
        match = _VERSION_CODE.fullmatch(code) if isinstance(code, str) else None
        if not match:
            raise ConfigError(
                f"{code!r} is not a model version code; expected v<registry version>-<YYYYMMDD>-"
                "<8 hex of the MLflow run id>, e.g. v3-20261128-1f2e3d4c (the promoted versions "
                "are the version_code tags in the MLflow registry; `slipway audit` lists those "
                "deployed)"
            )
        try:
            day = datetime.strptime(match["date"], "%Y%m%d").date()
        except ValueError as e:
            raise ConfigError(f"{code!r} has an impossible date {match['date']}") from e
        return cls(int(match["registry"]), day, match["run"])

    @property
    def registry_version(self) -> int:
        """The registry version of the model (the ``n`` of ``v<n>-…``)."""
        return int(self[1 : self.index("-")])

    @property
    def promoted_on(self) -> date:
        """The day the version was promoted."""
        return datetime.strptime(self.split("-")[1], "%Y%m%d").date()

    @property
    def run_prefix(self) -> str:
        """The first 8 hex digits of the MLflow run id that logged the model."""
        return self.rsplit("-", 1)[1]

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # str pickles through __getnewargs__ (the text), which __new__ does not take
        return VersionCode.parse, (str(self),)


def is_version_code(text: Any) -> bool:
    """Whether ``text`` is a valid version code (for filtering folder names, not for input)."""
    try:
        VersionCode.parse(text)
    except ConfigError:
        return False
    return True


def make_version_code(
    registry_version: int, run_id: str, when: datetime | None = None
) -> VersionCode:
    """Build the version code of a registry version logged by ``run_id``.

    Args:
        registry_version: The registry version, ``>= 1``.
        run_id: The MLflow run id; its first 8 characters must be hex digits.
        when: The promotion time (default now, UTC).

    Returns:
        The code, a :class:`VersionCode` (and so a ``str``).

    Raises:
        ConfigError: the registry version is below 1 or the run id does not start with 8 hex.
    """
    if registry_version < 1:
        raise ConfigError(f"registry version must be >= 1, got {registry_version}")
    prefix = run_id[:8].lower()
    if not _RUN_PREFIX.fullmatch(prefix):
        raise ConfigError(f"MLflow run id {run_id!r} does not start with 8 hex digits")
    day = (when or datetime.now(UTC)).date()
    return VersionCode(registry_version, day, prefix)


def parse_version_code(code: Any) -> VersionCode:
    """Parse a version code (the same as :meth:`VersionCode.parse`).

    Raises:
        ConfigError: ``code`` is not of the form ``v<n>-<YYYYMMDD>-<8 hex>``.
    """
    return VersionCode.parse(code)
