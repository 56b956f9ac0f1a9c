"""The versioned infer route, ``POST /v2/models/{name}/versions/{version}/infer``.

It is answered as ``/v2/models/{name}/infer`` with the version in ``scope["slipway.model_version"]``
(:func:`unversioned`): the same short way (:class:`~slipway.serving.infer.ServingApp`), under the
same concurrency limit, body timeout and ``route`` label as the unversioned one. The infer route
then refuses a version other than the served one (404).
"""

from __future__ import annotations

from typing import Any

VERSION_KEY = "slipway.model_version"


def unversioned(scope: dict) -> dict:
    """``scope`` with a versioned infer path made plain (and the version kept); else unchanged."""
    if scope["method"] != "POST":
        return scope
    path: str = scope["path"]
    if not (path.endswith("/infer") and "/versions/" in path):
        return scope
    parts = path.split("/")  # "", "v2", "models", name, "versions", version, "infer"
    if (
        len(parts) == 7
        and parts[1] == "v2"
        and parts[2] == "models"
        and (parts[4] == "versions" and parts[3] and parts[5])
    ):
        return {**scope, "path": f"/v2/models/{parts[3]}/infer", VERSION_KEY: parts[5]}
    return scope


class VersionedInfer:
    """Serve ``/v2/models/{name}/versions/{version}/infer`` as ``/v2/models/{name}/infer``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Rewrite a versioned infer path; pass everything else through unchanged."""
        if scope["type"] == "http":
            scope = unversioned(scope)
        await self.app(scope, receive, send)
