"""The deploy/rollback audit trail, kept in the MLflow registry next to what it describes.

One record per change, stored as a tag of the registered model: key
``audit.<UTC time, microseconds>Z`` (so keys sort by time), value a small JSON object. One tag per
record rather than one growing list: a tag is written in one call (no read-modify-write race),
and MLflow's SQL store keeps registered-model tag values in a ``VARCHAR(5000)``, which one record
fits easily and a list would outgrow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from slipway.errors import ConfigError, RegistryError
from slipway.versions import VersionCode

__all__ = [
    "AUDIT_TAG_PREFIX",
    "AuditRecord",
    "ReleaseEvent",
    "append_audit_record",
    "new_record",
    "read_audit_trail",
]

AUDIT_TAG_PREFIX = "audit."
ACTIONS = ("deploy", "rollback", "sync")
MAX_VALUE_CHARS = 5000  # VARCHAR(5000) of registered_model_tags.value in MLflow's SQL store
_MAX_REASON = 1000


@dataclass(frozen=True)
class ReleaseEvent:
    """One change of the served model version, as deploy and rollback report it.

    Attributes:
        action: ``deploy``, ``rollback`` or ``sync``.
        served: The version the Deployment serves after the change.
        from_version: The version served before (``None`` on a first deploy).
        reason: Why (``--reason`` / ``--cause``).
        revision: The Deployment's revision after the change; ``None`` without a cluster.
        env: Overlay, ``dev`` or ``prod``.
        context: kubeconfig context the change went to, ``None`` without a cluster.
        actor: Who ran it.

    Raises:
        ConfigError: ``action`` is not one of deploy, rollback, sync (a ``ValueError``).
    """

    action: str
    served: VersionCode
    from_version: VersionCode | None
    reason: str
    revision: int | None
    env: str
    context: str | None
    actor: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigError(f"audit action {self.action!r} is not one of {ACTIONS}")


@dataclass(frozen=True)
class AuditRecord:
    """Who changed which model version was served, when, why and to which revision.

    Attributes:
        action: ``deploy``, ``rollback`` or ``sync`` (registry brought in line with the cluster).
        actor: Who ran it (``--actor``, else ``$USER <git user.email>``).
        at: When, ISO 8601 in UTC.
        from_version: Version code served before (``None`` on a first deploy).
        to_version: Version code served after.
        reason: Why (``--reason`` / ``--cause``).
        revision: The Deployment's revision after the change (``kubectl rollout history``);
            ``None`` when nothing was applied to a cluster.
        env: Overlay, ``dev`` or ``prod``.
        context: kubeconfig context the change went to, ``None`` without a cluster.
        registry_version: Registry version that the ``champion`` alias points at afterwards.
    """

    action: str
    actor: str
    at: str
    from_version: str | None
    to_version: str
    reason: str
    revision: int | None
    env: str
    context: str | None
    registry_version: str | None

    def to_json(self) -> str:
        """The record as compact JSON with sorted keys (the tag value)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuditRecord:
        """Read a record written by :meth:`to_json` (missing fields become ``None``)."""
        data = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: data.get(k) for k in names})

    def same_change(self, other: AuditRecord) -> bool:
        """True if ``other`` records the same transition (used to keep resumes idempotent)."""
        return (self.from_version, self.to_version, self.revision, self.env) == (
            other.from_version,
            other.to_version,
            other.revision,
            other.env,
        )


def new_record(
    event: ReleaseEvent, *, registry_version: str | None, now: datetime | None = None
) -> AuditRecord:
    """Build the record of ``event``, stamped with the current UTC time.

    Args:
        event: The change; its reason is cut to 1000 characters and made one line.
        registry_version: Registry version that ``champion`` points at afterwards.
        now: The time to record (default now).

    Returns:
        The record, ready for :func:`append_audit_record`.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return AuditRecord(
        action=event.action,
        actor=event.actor.strip() or "unknown",
        at=when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        from_version=str(event.from_version) if event.from_version is not None else None,
        to_version=str(event.served),
        reason=" ".join(event.reason.split())[:_MAX_REASON],
        revision=event.revision,
        env=event.env,
        context=event.context,
        registry_version=registry_version,
    )


def append_audit_record(client: Any, name: str, record: AuditRecord) -> str:
    """Store ``record`` as a new tag of registered model ``name`` and read it back.

    Returns:
        The tag key, e.g. ``audit.20261128T101530.123456Z``.

    Raises:
        RegistryError: the record did not read back identical.
    """
    value = record.to_json()
    if len(value) > MAX_VALUE_CHARS:  # cannot happen with the reason capped; kept as a guard
        raise RegistryError(f"audit record is {len(value)} characters, over {MAX_VALUE_CHARS}")
    stamp = datetime.fromisoformat(record.at.replace("Z", "+00:00"))
    base = f"{AUDIT_TAG_PREFIX}{stamp:%Y%m%dT%H%M%S.%f}Z"
    existing = client.get_registered_model(name).tags
    key, n = base, 1
    while key in existing:  # two records in the same microsecond: never overwrite one
        key, n = f"{base}-{n}", n + 1
    client.set_registered_model_tag(name, key, value)
    if client.get_registered_model(name).tags.get(key) != value:
        raise RegistryError(f"audit record {key} of model {name!r} did not read back as written")
    return key


def read_audit_trail(client: Any, name: str) -> list[tuple[str, AuditRecord]]:
    """Every audit record of registered model ``name``, oldest first, with its tag key.

    Raises:
        RegistryError: a record is not valid JSON (someone edited the tag by hand).
    """
    trail = []
    for key, value in client.get_registered_model(name).tags.items():
        if not key.startswith(AUDIT_TAG_PREFIX):
            continue
        try:
            trail.append((key, AuditRecord.from_json(value)))
        except (ValueError, TypeError) as e:
            raise RegistryError(
                f"audit tag {key} of model {name!r} is not a slipway audit record ({e}): "
                "fix or delete that tag"
            ) from e
    return sorted(trail, key=lambda item: item[0])
