"""The model server Deployment through the Kubernetes API (the official ``kubernetes`` client).

:class:`DeploymentApi` is what the guard reads, patches and watches, and it is also the cluster
runner handed to :func:`slipway.release.rollback_deployment`: it answers the same calls as
:class:`slipway.release.Kubectl` (``current_context``, ``get_deployment``, ``rollout_undo``,
``rollout_status``) without a kubectl binary in the image, with exactly the API verbs the
guard's Role grants (get/list/watch/patch on the Deployment, get/list/watch on ReplicaSets).

``rollout_undo`` does what ``kubectl rollout undo`` does (kubectl's ``DeploymentRollbacker``):
find the ReplicaSet of the target revision among those the Deployment controls, and JSON-patch
the Deployment's pod template and annotations back to it. One difference on purpose: the
guard's own ``guard.slipway.io/*`` annotations are kept as they are on the Deployment
(kubectl would replace them with the ReplicaSet's copy from when that revision was current).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from slipway.errors import ConfigError, KubectlError
from slipway.release import DEPLOYMENT, REVISION_ANNOTATION, VERSION_ENV, parse_duration

__all__ = ["ANNOTATION_PREFIX", "DeploymentApi", "load_api_client"]

#: Annotations owned by the guard (its window state); kept across ``rollout_undo``.
ANNOTATION_PREFIX = "guard.slipway.io/"
_HASH_LABEL = "pod-template-hash"
# annotations that describe the Deployment itself, never copied back from a ReplicaSet
# (kubectl's annotationsToSkip)
_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> tuple[Any, str]:
    """A ``kubernetes.client.ApiClient`` and the name of where it points.

    In a pod (``KUBERNETES_SERVICE_HOST`` set and no kubeconfig given) the ServiceAccount's
    in-cluster config; otherwise the kubeconfig (``--kubeconfig``, else ``$KUBECONFIG``, else
    ``~/.kube/config``).

    Returns:
        ``(api client, context name)``; the name is ``in-cluster`` in a pod.

    Raises:
        ConfigError: no configuration could be loaded; the message says what was tried.
    """
    import os

    from kubernetes import client, config

    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration), "in-cluster"
        except config.ConfigException as e:
            raise ConfigError(
                f"in-cluster Kubernetes config failed ({e}): mount the ServiceAccount token "
                "(automountServiceAccountToken: true) or pass --kubeconfig"
            ) from e
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError) as e:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigError(
            f"no usable kubeconfig at {where} ({e}): pass --kubeconfig, set KUBECONFIG, or run "
            "the guard in the cluster"
        ) from e
    return api, context or active["name"]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class DeploymentApi:
    """One Deployment (default ``slipway-server``) and its ReplicaSets, through the API.

    Args:
        api_client: A ``kubernetes.client.ApiClient`` (:func:`load_api_client`).
        namespace: The Deployment's namespace.
        name: The Deployment's name.
        context: What :meth:`current_context` answers (recorded in the audit trail).
        request_timeout: Seconds of one API call.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str,
        name: str = DEPLOYMENT,
        context: str = "in-cluster",
        request_timeout: float = 30.0,
    ) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.context = context
        self.request_timeout = request_timeout

    # ------------------------------------------------------------------ reading

    def _error(self, what: str, e: Exception) -> KubectlError:
        from kubernetes.client.exceptions import ApiException

        if isinstance(e, ApiException):
            hint = {
                403: "the guard's ServiceAccount lacks that verb (manifests/monitoring/guard-rbac.yaml)",
                404: f"check --namespace ({self.namespace}) and --deployment ({self.name})",
                409: "the object changed meanwhile; the next check retries",
            }.get(e.status, "see the API server's message")
            return KubectlError(
                f"{what} deployment/{self.name} in namespace {self.namespace} failed "
                f"(HTTP {e.status} {e.reason}): {hint}"
            )
        return KubectlError(
            f"{what} deployment/{self.name}: the Kubernetes API is unreachable "
            f"({type(e).__name__}: {e}); check the kubeconfig or the pod's network"
        )

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, _request_timeout=self.request_timeout, **kwargs)
        except (ApiException, HTTPError, OSError) as e:
            raise self._error(what, e) from e

    def _plain(self, obj: Any) -> dict[str, Any]:
        return self.api_client.sanitize_for_serialization(obj)

    def current_context(self) -> str:
        """Where the API points (``in-cluster`` or the kubeconfig context)."""
        return self.context

    def find_deployment(self, name: str | None = None) -> dict[str, Any] | None:
        """The live Deployment as ``kubectl get -o json`` prints it, or ``None``."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            obj = self.apps.read_namespaced_deployment(
                name or self.name, self.namespace, _request_timeout=self.request_timeout
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise self._error("reading", e) from e
        except (HTTPError, OSError) as e:
            raise self._error("reading", e) from e
        return self._plain(obj)

    def get_deployment(self, name: str | None = None) -> dict[str, Any]:
        """The live Deployment.

        Raises:
            KubectlError: it does not exist, or the API failed.
        """
        found = self.find_deployment(name)
        if found is None:
            raise KubectlError(
                f"deployment/{self.name} not found in namespace {self.namespace}: deploy it "
                "first (`slipway deploy`) or pass --namespace/--deployment"
            )
        return found

    def replica_sets(self, deployment: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The ReplicaSets the Deployment controls (owner reference with its uid)."""
        deployment = deployment or self.get_deployment()
        uid = deployment["metadata"]["uid"]
        labels = deployment["spec"]["selector"].get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = self._call(
            "listing the ReplicaSets of",
            self.apps.list_namespaced_replica_set,
            self.namespace,
            label_selector=selector,
        )
        owned = []
        for rs in (self._plain(item) for item in found.items):
            owners = rs["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == uid and o.get("controller") for o in owners):
                owned.append(rs)
        return owned

    def revisions(self) -> list[tuple[int, str]]:
        """``(revision, MODEL_VERSION)`` of every kept revision, oldest first."""
        kept = []
        for rs in self.replica_sets():
            revision = (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "")
            version = _template_version(rs["spec"]["template"])
            if revision.isdigit() and version:
                kept.append((int(revision), version))
        return sorted(kept)

    # ------------------------------------------------------------------ writing

    def patch_annotations(self, annotations: dict[str, str | None]) -> dict[str, Any]:
        """Set (or, with ``None``, remove) Deployment annotations with one JSON patch.

        Only ``metadata.annotations`` changes, so no new revision starts.
        """
        live = self.get_deployment()
        current = live["metadata"].get("annotations")
        ops: list[dict[str, Any]] = []
        if current is None:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
            current = {}
        for key, value in annotations.items():
            path = f"/metadata/annotations/{_escape(key)}"
            if value is None:
                if key in current:
                    ops.append({"op": "remove", "path": path})
            else:
                ops.append({"op": "add", "path": path, "value": value})
        if not ops:
            return live
        return self._plain(
            self._call(
                "patching", self.apps.patch_namespaced_deployment, self.name, self.namespace, ops
            )
        )

    def rollout_undo(self, name: str | None = None, to_revision: int | None = None) -> str:
        """Return the pod template to ``to_revision`` (default: the previous revision).

        Raises:
            KubectlError: the Deployment is paused, the revision is not kept, or it is the
                current template already.
        """
        deployment = self.get_deployment(name)
        if deployment["spec"].get("paused"):
            raise KubectlError(
                f"deployment/{self.name} is paused: resume it (`kubectl rollout resume`) first"
            )
        by_revision = {}
        for rs in self.replica_sets(deployment):
            revision = (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "")
            if revision.isdigit():
                by_revision[int(revision)] = rs
        current = int((deployment["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, 0))
        if to_revision is None:
            older = sorted((r for r in by_revision if r < current), reverse=True)
            if not older:
                raise KubectlError(f"deployment/{self.name} has no previous revision to undo to")
            to_revision = older[0]
        if to_revision not in by_revision:
            raise KubectlError(
                f"revision {to_revision} of deployment/{self.name} is not kept (kept: "
                f"{sorted(by_revision)}); raise revisionHistoryLimit or pick a kept one"
            )
        rs = by_revision[to_revision]
        template = rs["spec"]["template"]
        template.setdefault("metadata", {}).setdefault("labels", {}).pop(_HASH_LABEL, None)
        live_annotations = deployment["metadata"].get("annotations") or {}
        restored = {k: v for k, v in live_annotations.items() if k in _SKIP}
        restored.update(
            {k: v for k, v in (rs["metadata"].get("annotations") or {}).items() if k not in _SKIP}
        )
        restored.update(
            {k: v for k, v in live_annotations.items() if k.startswith(ANNOTATION_PREFIX)}
        )
        ops = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": restored},
        ]
        self._call(
            "rolling back", self.apps.patch_namespaced_deployment, self.name, self.namespace, ops
        )
        return f"deployment.apps/{self.name} rolled back to revision {to_revision}"

    def rollout_status(self, name: str | None = None, timeout: str = "5m") -> str:
        """Wait until the rollout finishes, as ``kubectl rollout status`` decides it.

        Raises:
            KubectlError: the progress deadline was exceeded, or ``timeout`` passed.
        """
        deadline = time.monotonic() + parse_duration(timeout)
        while True:
            live = self.get_deployment(name)
            done, why = _rolled_out(live)
            if done:
                return f"deployment {self.name} successfully rolled out"
            if why.startswith("exceeded"):
                raise KubectlError(f"deployment/{self.name} {why}")
            if time.monotonic() > deadline:
                raise KubectlError(
                    f"deployment/{self.name} did not roll out within {timeout}: {why}"
                )
            time.sleep(0.5)

    # ------------------------------------------------------------------ watching

    def watch(
        self, resource_version: str | None, timeout_s: int = 60
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events of the Deployment from ``resource_version`` (``(type, object)``).

        The stream ends after ``timeout_s`` (the caller watches again from the last
        resourceVersion); ``kubernetes.client.exceptions.ApiException`` with status 410 means
        the version is too old: list again.
        """
        from kubernetes import watch

        stream = watch.Watch().stream(
            self.apps.list_namespaced_deployment,
            self.namespace,
            field_selector=f"metadata.name={self.name}",
            resource_version=resource_version,
            timeout_seconds=timeout_s,
            allow_watch_bookmarks=True,
            _request_timeout=timeout_s + 10,
        )
        for event in stream:
            obj = event["object"]
            yield event["type"], obj if isinstance(obj, dict) else self._plain(obj)


def _template_version(template: dict[str, Any]) -> str | None:
    for container in template.get("spec", {}).get("containers", []):
        for env in container.get("env") or []:
            if env.get("name") == VERSION_ENV and env.get("value"):
                return env["value"]
    return None


def _rolled_out(deployment: dict[str, Any]) -> tuple[bool, str]:
    status = deployment.get("status") or {}
    spec = deployment["spec"]
    if deployment["metadata"].get("generation", 0) > status.get("observedGeneration", -1):
        return False, "waiting for the controller to observe the new generation"
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return False, "exceeded its progress deadline"
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < replicas:
        return False, f"{updated} of {replicas} updated replicas"
    if status.get("replicas", 0) > updated:
        return False, f"{status.get('replicas', 0) - updated} old replicas pending termination"
    if status.get("availableReplicas", 0) < updated:
        return (
            False,
            f"{status.get('availableReplicas', 0)} of {updated} updated replicas available",
        )
    return True, "rolled out"
