"""Make pods Ready on a control plane without a kubelet, the way kwok does.

:class:`FakeKubelet` registers a Ready ``Node``, renews its ``Lease`` in ``kube-node-lease``
(otherwise the node goes Unknown after ~50 s and its pods are evicted), binds every pending
pod to that node, reports the bound pods Running and Ready through the ``status``
subresource, and force-deletes its pods stuck Terminating. :meth:`FakeKubelet.keep_unready`
keeps chosen pods Running but not Ready, like a failing readiness probe, to exercise rollout
timeouts. Pods get no IP addresses, so Services have no endpoints.

On a cluster with a real scheduler (``SLIPWAY_TEST_KUBECONFIG``), pods the scheduler places on
real nodes are left to their kubelet; only pods bound to the fake node are reported here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.support.k8s import Cluster

NODE_NAME = "slipway-fake-node"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class _Unready:
    namespace: str | None
    labels: dict[str, str]

    def matches(self, pod: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        if self.namespace is not None and meta["namespace"] != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items())


def pod_status(pod: dict[str, Any], ready: bool) -> dict[str, Any]:
    """The ``status`` a kubelet reports for ``pod`` once its containers run (Ready or not)."""
    now = _now()
    uid = pod["metadata"]["uid"]
    spec = pod["spec"]
    flag = "True" if ready else "False"
    not_ready = (
        {} if ready else {"reason": "ContainersNotReady", "message": "kept unready by the test"}
    )

    def running(container: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "containerID": f"fake://{uid}/{container['name']}",
            "ready": ready,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": now}},
        }

    def completed(container: dict[str, Any]) -> dict[str, Any]:
        if container.get("restartPolicy") == "Always":  # a sidecar keeps running
            return running(container)
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "containerID": f"fake://{uid}/{container['name']}",
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": now,
                    "finishedAt": now,
                }
            },
        }

    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "startTime": now,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now, **not_ready},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now, **not_ready},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "initContainerStatuses": [completed(c) for c in spec.get("initContainers", [])],
        "containerStatuses": [running(c) for c in spec["containers"]],
    }


def _is_ready(pod: dict[str, Any]) -> bool | None:
    """True/False from the pod's Ready condition once Running; None before."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return None
    for condition in status.get("conditions") or []:
        if condition["type"] == "Ready":
            return condition["status"] == "True"
    return None


class FakeKubelet:
    """One fake node that runs every pending pod of the cluster (see the module docstring).

    Args:
        cluster: The cluster to act on.
        node: The name of the fake node.
        interval: Seconds between two passes over the pods.
        lease_every: Seconds between two renewals of the node's Lease.
    """

    def __init__(
        self, cluster: Cluster, node: str = NODE_NAME, interval: float = 0.2, lease_every: float = 5
    ) -> None:
        self.cluster = cluster
        self.node = node
        self.interval = interval
        self.lease_every = lease_every
        self.errors: list[str] = []
        self._unready: list[_Unready] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKubelet:
        """Register the node and its lease, then run the pods in a background thread."""
        self._client = self.cluster.api()
        self._register_node()
        self._renew_lease()
        self._thread = threading.Thread(
            target=self._run, name=f"fake-kubelet-{self.node}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and remove the node and its lease (best effort)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._client is not None:
            for path in (
                f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}",
                f"/api/v1/nodes/{self.node}",
            ):
                with suppress(httpx.HTTPError):
                    self._client.delete(path)
            self._client.close()

    @contextmanager
    def keep_unready(
        self, namespace: str | None = None, labels: dict[str, str] | None = None
    ) -> Iterator[None]:
        """Keep the matching pods Running but not Ready until the block ends.

        Args:
            namespace: Only pods of this namespace (any namespace when None).
            labels: Only pods carrying all these labels (any pod when None).
        """
        rule = _Unready(namespace, dict(labels or {}))
        with self._lock:
            self._unready.append(rule)
        try:
            yield
        finally:
            with self._lock:
                self._unready.remove(rule)

    # ------------------------------------------------------------------ the work

    def _register_node(self) -> None:
        client = self._client
        assert client is not None
        response = client.post(
            "/api/v1/nodes",
            json={
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.node,
                    "labels": {
                        "kubernetes.io/hostname": self.node,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": "test-zone-a",
                        "type": "fake-kubelet",
                    },
                },
            },
        )
        if response.status_code != 409:
            response.raise_for_status()
        now = _now()
        capacity = {"cpu": "32", "memory": "128Gi", "pods": "500"}
        client.patch(
            f"/api/v1/nodes/{self.node}/status",
            headers=MERGE_PATCH,
            json={
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "fake kubelet of the slipway tests",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                    "nodeInfo": {
                        "kubeletVersion": "v1.36.2-fake",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                }
            },
        ).raise_for_status()

    def _renew_lease(self) -> None:
        client = self._client
        assert client is not None
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": _micro_now()}
        response = client.patch(f"{path}/{self.node}", headers=MERGE_PATCH, json={"spec": spec})
        if response.status_code == 404:
            response = client.post(
                path,
                json={
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.node},
                    "spec": spec,
                },
            )
        response.raise_for_status()

    def _run(self) -> None:
        last_lease = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                if time.monotonic() - last_lease >= self.lease_every:
                    self._renew_lease()
                    last_lease = time.monotonic()
                self.sync()
            except Exception as e:  # keep running; the tests read .errors
                self.errors.append(f"{type(e).__name__}: {e}")
                del self.errors[:-50]

    def sync(self) -> None:
        """One pass: bind pending pods, report their status, force-delete terminating ones."""
        client = self._client
        assert client is not None
        response = client.get("/api/v1/pods")
        response.raise_for_status()
        for pod in response.json()["items"]:
            meta, spec = pod["metadata"], pod["spec"]
            base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            node = spec.get("nodeName")
            if meta.get("deletionTimestamp"):
                if node == self.node:
                    client.request("DELETE", base, json={"gracePeriodSeconds": 0})
                continue
            if not node:
                if (
                    spec.get("schedulingGates")
                    or spec.get("schedulerName", "default-scheduler") != "default-scheduler"
                ):
                    continue
                bound = client.post(
                    f"{base}/binding",
                    json={
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
                    },
                )
                if bound.status_code >= 400:  # a real scheduler was faster, or the pod is gone
                    continue
            elif node != self.node:
                continue
            with self._lock:
                ready = not any(rule.matches(pod) for rule in self._unready)
            if _is_ready(pod) is ready:
                continue
            patched = client.patch(
                f"{base}/status", headers=MERGE_PATCH, json={"status": pod_status(pod, ready)}
            )
            if patched.status_code >= 400 and patched.status_code != 404:
                self.errors.append(
                    f"status of {meta['namespace']}/{meta['name']}: {patched.status_code} {patched.text}"
                )
                del self.errors[:-50]
