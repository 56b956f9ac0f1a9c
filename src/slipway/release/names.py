"""The names of the Kubernetes objects and fields that deploy and rollback read and write.

One place for them: the overlay writer, the kubectl runner, the messages and the tests take them
from here. The namespace is configuration (``Settings.namespace``, ``SLIPWAY_NAMESPACE``), since
users bring their own; these names are fixed by the manifests in ``manifests/base``.
"""

from __future__ import annotations

__all__ = [
    "CHANGE_CAUSE_ANNOTATION",
    "CONTAINER",
    "DEPLOYMENT",
    "REVISION_ANNOTATION",
    "VERSION_ENV",
    "status_command",
]

#: The model server Deployment (manifests/base/deployment.yaml).
DEPLOYMENT = "slipway-server"
#: Its container that serves the model.
CONTAINER = "server"
#: The annotation ``kubectl rollout history`` shows as CHANGE-CAUSE.
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
#: The Deployment's current revision, set by the Deployment controller.
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
#: The one container env var that pins the served version (the server's Settings read it).
VERSION_ENV = "MODEL_VERSION"


def status_command(namespace: str) -> str:
    """The ``kubectl rollout status`` command an operator runs to watch the model server."""
    return f"kubectl -n {namespace} rollout status deployment/{DEPLOYMENT}"
