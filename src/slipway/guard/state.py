"""The guard's window state, kept in annotations of the watched Deployment.

State lives in the cluster, not in the guard's memory, so that a restarted guard (a new pod,
a node drain) resumes the window where it was: the revision, when its window started, the
failing-check counts, the verdict, and the versions the guard has rejected. The annotations sit
on the Deployment's own metadata, never on its pod template, so writing them starts no rollout;
:meth:`slipway.guard.cluster.DeploymentApi.patch_annotations` writes them with one JSON patch.

=================================  =============================================================
``guard.slipway.io/window``        the current window (JSON, :func:`encode_window`)
``guard.slipway.io/rejected``      JSON list of the versions the guard rolled back
``guard.slipway.io/restored``      the revision the guard's last rollback created (watched only)
``guard.slipway.io/paused``        ``"true"``: the guard checks nothing (set by an operator)
=================================  =============================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from slipway.guard.cluster import ANNOTATION_PREFIX
from slipway.guard.window import VERDICTS, WindowState

__all__ = [
    "PAUSED",
    "REJECTED",
    "RESTORED",
    "WINDOW",
    "decode_rejected",
    "decode_window",
    "encode_rejected",
    "encode_window",
    "is_paused",
    "restored_revision",
]

WINDOW = f"{ANNOTATION_PREFIX}window"
REJECTED = f"{ANNOTATION_PREFIX}rejected"
RESTORED = f"{ANNOTATION_PREFIX}restored"
PAUSED = f"{ANNOTATION_PREFIX}paused"
#: Versions kept in the rejected list (the oldest are dropped first; the registry's
#: ``guard_rejected`` tags keep them all).
MAX_REJECTED = 50


def _iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def encode_window(state: WindowState) -> str:
    """The window as compact JSON (the value of ``guard.slipway.io/window``)."""
    body = {
        "revision": state.revision,
        "version": state.version,
        "started": _iso(state.started_at),
        "mode": state.mode,
        "failures": dict(sorted(state.failures.items())),
        "checks": state.checks,
        "traffic_seen": state.traffic_seen,
        "verdict": state.verdict,
        "detail": state.detail,
    }
    return json.dumps(body, separators=(",", ":"))


def decode_window(annotations: Mapping[str, str] | None) -> WindowState | None:
    """The window stored in ``annotations``, or ``None`` when there is none or it is unreadable.

    An unreadable value (edited by hand) is treated as no window: the guard starts a new one
    for the current revision, which is the safe direction (it checks more, never less).
    """
    text = (annotations or {}).get(WINDOW)
    if not text:
        return None
    try:
        body: dict[str, Any] = json.loads(text)
        verdict = body.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            return None
        return WindowState(
            revision=int(body["revision"]),
            version=str(body["version"]),
            started_at=_epoch(body["started"]),
            mode="watch" if body.get("mode") == "watch" else "guard",
            failures={str(k): int(v) for k, v in (body.get("failures") or {}).items()},
            checks=int(body.get("checks", 0)),
            traffic_seen=bool(body.get("traffic_seen", False)),
            verdict=verdict,
            detail=str(body.get("detail", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def decode_rejected(annotations: Mapping[str, str] | None) -> list[str]:
    """The versions the guard rejected, oldest first (unreadable: none)."""
    text = (annotations or {}).get(REJECTED)
    try:
        found = json.loads(text) if text else []
    except ValueError:
        return []
    return [str(v) for v in found] if isinstance(found, list) else []


def encode_rejected(rejected: list[str], version: str) -> str:
    """The rejected list with ``version`` added (once), as JSON."""
    versions = [v for v in rejected if v != version] + [version]
    return json.dumps(versions[-MAX_REJECTED:], separators=(",", ":"))


def restored_revision(annotations: Mapping[str, str] | None) -> int | None:
    """The revision the guard's last rollback created, if recorded."""
    text = (annotations or {}).get(RESTORED, "")
    return int(text) if text.isdigit() else None


def is_paused(annotations: Mapping[str, str] | None) -> bool:
    """True when an operator paused the guard (``guard.slipway.io/paused: "true"``)."""
    return (annotations or {}).get(PAUSED, "").strip().lower() == "true"
