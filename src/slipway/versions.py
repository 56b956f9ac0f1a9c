"""Model version codes: ``v<registry version>-<YYYYMMDD>-<first 8 hex of the MLflow run id>``.

Example: ``v3-20261128-1f2e3d4c`` is registry version 3 of the model, promoted on 2026-11-28, from
MLflow run ``1f2e3d4c…``. The code is unique (registry versions are), readable, and a valid path
segment, Kubernetes label value and annotation, so it can name the EFS folder and sit in the
Deployment's pod template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from slipway.errors import ConfigError

VERSION_CODE_PATTERN = r"^v(?P<registry>[1-9][0-9]*)-(?P<date>[0-9]{8})-(?P<run>[0-9a-f]{8})$"
_VERSION_CODE = re.compile(VERSION_CODE_PATTERN)


@dataclass(frozen=True)
class VersionCode:
    registry_version: int
    promoted_on: date
    run_prefix: str

    def __str__(self) -> str:
        return f"v{self.registry_version}-{self.promoted_on:%Y%m%d}-{self.run_prefix}"


def make_version_code(registry_version: int, run_id: str, when: datetime | None = None) -> str:
    """Build the version code of a registry version logged by ``run_id``."""
    if registry_version < 1:
        raise ConfigError(f"registry version must be >= 1, got {registry_version}")
    prefix = run_id[:8].lower()
    if not re.fullmatch(r"[0-9a-f]{8}", prefix):
        raise ConfigError(f"MLflow run id {run_id!r} does not start with 8 hex digits")
    day = (when or datetime.now(UTC)).date()
    return str(VersionCode(registry_version, day, prefix))


def parse_version_code(code: str) -> VersionCode:
    """Parse a version code.

    Raises:
        ConfigError: ``code`` is not of the form ``v<n>-<YYYYMMDD>-<8 hex>``.
    """
    match = _VERSION_CODE.fullmatch(code or "")
    if not match:
        raise ConfigError(
            f"{code!r} is not a model version code; expected v<registry version>-<YYYYMMDD>-"
            "<8 hex of the MLflow run id>, e.g. v3-20261128-1f2e3d4c (see `slipway models`)"
        )
    try:
        day = datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError as e:
        raise ConfigError(f"{code!r} has an impossible date {match['date']}") from e
    return VersionCode(int(match["registry"]), day, match["run"])
