"""A real Kubernetes API for the integration tests: etcd, kube-apiserver, kube-controller-manager.

There is no kubelet, scheduler or network (see ``/work/shared/k8s/README.md``): the API server
and the real controllers (Deployment, ReplicaSet, garbage collector, namespace, HPA ...) run on
127.0.0.1, and :mod:`tests.support.k8s_pods` plays the kubelet so that pods become Ready.

Where the pieces come from, in this order:

* ``SLIPWAY_TEST_KUBECONFIG`` names the kubeconfig of a *disposable* cluster (kind, a dev EKS):
  it is used as is and nothing is started.
* ``kube-apiserver`` and ``kube-controller-manager`` from ``SLIPWAY_K8S_BIN_DIR``, else
  decompressed once from ``<repo>/../shared/k8s/*.xz`` into ``~/.cache/slipway/`` (the folder is
  keyed by the digest of ``SHA256SUMS``; every binary is checked against it).
* ``etcd`` from ``SLIPWAY_K8S_BIN_DIR`` or the ``PATH`` (Debian package ``etcd-server``).
"""

from __future__ import annotations

import base64
import hashlib
import lzma
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support import REPO
from tests.support.processes import free_port, with_group_stop

#: The Kubernetes version of the shared binaries (``/work/shared/k8s/README.md``).
K8S_VERSION = "v1.36.2"


def _shared_k8s() -> Path:
    """``<repo>/../shared/k8s``; from a git worktree, next to the main checkout instead."""
    candidates = [REPO.parent / "shared" / "k8s"]
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        candidates.append(Path(common).parent.parent / "shared" / "k8s")
    except (OSError, subprocess.SubprocessError):
        pass
    return next((c for c in candidates if (c / "SHA256SUMS").is_file()), candidates[0])


#: Where the compressed control-plane binaries live (read-only: never write there).
SHARED_K8S = _shared_k8s()
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager")
BIN_DIR_ENV = "SLIPWAY_K8S_BIN_DIR"
KUBECONFIG_ENV = "SLIPWAY_TEST_KUBECONFIG"
#: Timeout of one kubectl run unless a caller asks for another.
KUBECTL_TIMEOUT = 60.0


class K8sUnavailable(RuntimeError):
    """A piece of the control plane is missing; the message names it and how to get it."""


class K8sStartError(RuntimeError):
    """A control-plane process did not become ready; the message carries the log tails."""


# --------------------------------------------------------------------------------------------
# binaries


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/slipway`` (``~/.cache/slipway`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slipway"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest
    return sums


def _decompress(src: Path, target: Path, expected: str) -> None:
    """Decompress ``src`` to ``target`` through a temporary name, renamed only once verified."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, lzma.open(src) as compressed:
            for chunk in iter(lambda: compressed.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise K8sUnavailable(
                f"{src} decompresses to sha256 {digest.hexdigest()} but SHA256SUMS says "
                f"{expected}: the archive is damaged, copy it again"
            )
        tmp.chmod(0o755)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def control_plane_binaries(
    env: dict[str, str] | None = None, shared: Path = SHARED_K8S, cache: Path | None = None
) -> dict[str, Path]:
    """The paths of ``kube-apiserver`` and ``kube-controller-manager``.

    Args:
        env: The environment to read ``SLIPWAY_K8S_BIN_DIR`` from (``os.environ`` by default).
        shared: The read-only folder with ``*.xz`` and ``SHA256SUMS``.
        cache: Where to decompress them (``cache_root()`` by default).

    Raises:
        K8sUnavailable: A binary is missing, or an archive does not match ``SHA256SUMS``.
    """
    env = os.environ if env is None else env
    if bin_dir := env.get(BIN_DIR_ENV):
        found = {name: Path(bin_dir) / name for name in CONTROL_PLANE}
        for name, path in found.items():
            if not os.access(path, os.X_OK):
                raise K8sUnavailable(
                    f"{BIN_DIR_ENV}={bin_dir} has no executable {name}: put the {K8S_VERSION} "
                    f"binaries there, or unset {BIN_DIR_ENV} to use {shared}"
                )
        return found
    sums_file = shared / "SHA256SUMS"
    if not sums_file.is_file():
        raise K8sUnavailable(
            f"no Kubernetes control plane: {sums_file} does not exist; set {BIN_DIR_ENV} to a "
            f"folder with kube-apiserver and kube-controller-manager ({K8S_VERSION}), or "
            f"{KUBECONFIG_ENV} to the kubeconfig of a disposable cluster (kind)"
        )
    key = hashlib.sha256(sums_file.read_bytes()).hexdigest()[:12]
    dest = (cache or cache_root()) / f"k8s-{K8S_VERSION}-{key}"
    dest.mkdir(parents=True, exist_ok=True)
    sums = _read_sums(sums_file)
    found = {}
    for name in CONTROL_PLANE:
        target = dest / name
        if not target.exists():  # present only once verified: _decompress renames at the end
            archive = shared / f"{name}.xz"
            if not archive.is_file() or name not in sums:
                raise K8sUnavailable(
                    f"{archive} or its line in {sums_file} is missing: restore {shared}, or "
                    f"set {BIN_DIR_ENV} to a folder with {name} ({K8S_VERSION})"
                )
            _decompress(archive, target, sums[name])
        found[name] = target
    return found


def etcd_binary(env: dict[str, str] | None = None) -> Path:
    """``etcd`` from ``SLIPWAY_K8S_BIN_DIR``, else from the ``PATH``."""
    env = os.environ if env is None else env
    if (bin_dir := env.get(BIN_DIR_ENV)) and os.access(Path(bin_dir) / "etcd", os.X_OK):
        return Path(bin_dir) / "etcd"
    if found := shutil.which("etcd"):
        return Path(found)
    raise K8sUnavailable("etcd not found: run `make install` (installs etcd-server)")


def kubectl_binary() -> Path:
    """``kubectl`` from the ``PATH``."""
    if found := shutil.which("kubectl"):
        return Path(found)
    raise K8sUnavailable("kubectl not found on the PATH: install kubectl (1.30 or later)")


# --------------------------------------------------------------------------------------------
# certificates and kubeconfigs


@dataclass(frozen=True)
class Pki:
    """The certificate files of one control plane (all PEM)."""

    ca_crt: Path
    ca_key: Path
    server_crt: Path
    server_key: Path
    admin_crt: Path
    admin_key: Path
    kcm_crt: Path
    kcm_key: Path
    sa_key: Path
    sa_pub: Path


SERVER_SANS = (
    "IP:127.0.0.1",
    "IP:10.96.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise K8sStartError(f"openssl {' '.join(args)} failed: {result.stderr}")


def make_pki(folder: Path) -> Pki:
    """A CA, the apiserver's serving certificate, two client certificates and an SA key pair."""
    if shutil.which("openssl") is None:
        raise K8sUnavailable("openssl not found on the PATH: apt-get install openssl")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3", "-subj",
        "/CN=slipway-test-ca", "-keyout", "ca.key", "-out", "ca.crt",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=folder,
    )  # fmt: skip

    def leaf(name: str, subject: str, extensions: str) -> None:
        (folder / f"{name}.ext").write_text(extensions)
        _openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "3",
            "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=folder,
        )  # fmt: skip

    leaf(
        "server",
        "/CN=kube-apiserver",
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(SERVER_SANS)}\n",
    )
    client = "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    leaf("admin", "/O=system:masters/CN=slipway-test-admin", client)
    leaf("kcm", "/O=system:masters/CN=system:kube-controller-manager", client)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)
    return Pki(
        **{
            f"{name}_{part}": folder / f"{name}.{part}"
            for name in ("ca", "server", "admin", "kcm")
            for part in ("crt", "key")
        },
        sa_key=folder / "sa.key",
        sa_pub=folder / "sa.pub",
    )


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> Path:
    """A kubeconfig for ``server`` with the CA and the client certificate embedded."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "slipway-test", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}
        ],
        "contexts": [{"name": "slipway-test", "context": {"cluster": "slipway-test", "user": user}}],
        "current-context": "slipway-test",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------------------------
# the cluster handle


@dataclass
class Cluster:
    """A Kubernetes API the tests may change at will.

    Attributes:
        kubeconfig: The kubeconfig of an admin (``system:masters``).
        server: The API base URL (``https://127.0.0.1:<port>`` for the local control plane).
        local: True when this session started the control plane itself (no kubelet, no
            scheduler); False for ``SLIPWAY_TEST_KUBECONFIG``.
        logs: The folder with the processes' logs (local control plane only).
    """

    kubeconfig: Path
    server: str
    local: bool
    logs: Path | None = None
    _client_factory: Callable[[], httpx.Client] = field(default=None, repr=False)  # type: ignore[assignment]

    def kubectl(
        self,
        *args: str,
        timeout: float = KUBECTL_TIMEOUT,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run Debian's ``kubectl`` against this cluster (always with a timeout).

        Args:
            *args: The kubectl arguments (``"get", "pods", "-n", "x"``).
            timeout: Seconds before the run is killed and the test fails.
            check: Raise ``AssertionError`` with kubectl's output when it exits non-zero.
            input: Text for kubectl's standard input (``-f -``).
        """
        argv = [str(kubectl_binary()), "--kubeconfig", str(self.kubeconfig), *args]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        try:
            result = subprocess.run(
                argv, input=input, capture_output=True, text=True, timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"kubectl {' '.join(args)} did not finish within {timeout} s: {e.stdout!r} {e.stderr!r}"
            ) from e
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def api(self) -> httpx.Client:
        """A new authenticated HTTP client whose base URL is the API (one per thread)."""
        return self._client_factory()


def _tls_client(server: str, pki: Pki) -> Callable[[], httpx.Client]:
    def make() -> httpx.Client:
        context = ssl.create_default_context(cafile=str(pki.ca_crt))
        context.load_cert_chain(str(pki.admin_crt), str(pki.admin_key))
        return httpx.Client(base_url=server, verify=context, timeout=10)

    return make


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class _Process:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def _wait(what: str, probe: Callable[[], bool], processes: list[_Process], timeout: float) -> None:
    """Wait until ``probe()`` is true, or raise with the tail of every process's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in processes if p.proc.poll() is not None]
        if dead:
            break
        try:
            if probe():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    tails = "\n".join(
        f"--- {p.name} (pid {p.proc.pid}, exit {p.proc.poll()}) log {p.log}:\n{p.tail()}"
        for p in processes
    )
    raise K8sStartError(f"{what} was not ready within {timeout} s\n{tails}")


@contextmanager
def local_cluster(folder: Path, timeout: float = 60) -> Iterator[Cluster]:
    """Start etcd, kube-apiserver and kube-controller-manager on free ports; stop them after.

    Every process runs in its own process group and is stopped by its PID; the logs stay in
    ``folder``. Prints the start-to-ready time and the memory of the processes once.

    Raises:
        K8sUnavailable: A binary is missing (the message says how to get it).
        K8sStartError: A process did not become ready (the message has the log tails).
    """
    binaries = control_plane_binaries()
    etcd = etcd_binary()
    kubectl_binary()
    started = time.monotonic()
    pki = make_pki(folder / "pki")
    etcd_port, peer_port, api_port, kcm_port = (free_port() for _ in range(4))
    server = f"https://127.0.0.1:{api_port}"
    admin = write_kubeconfig(
        folder / "admin.kubeconfig", server, pki.ca_crt, pki.admin_crt, pki.admin_key, "admin"
    )
    kcm_config = write_kubeconfig(
        folder / "kcm.kubeconfig", server, pki.ca_crt, pki.kcm_crt, pki.kcm_key, "kcm"
    )
    processes: list[_Process] = []

    def start(name: str, argv: list[str]) -> None:
        log = folder / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        processes.append(_Process(name, proc, log))

    with ExitStack() as stack:
        stack.callback(lambda: [with_group_stop(p.proc) for p in reversed(processes)])
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        start(
            "etcd",
            [
                str(etcd), "--name", "slipway-test", "--data-dir", str(folder / "etcd"),
                "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"slipway-test={peer_url}", "--listen-metrics-urls=",
            ],
        )  # fmt: skip
        _wait(
            "etcd",
            lambda: httpx.get(f"{etcd_url}/health", timeout=2).is_success,
            processes,
            timeout,
        )
        start(
            "kube-apiserver",
            [
                str(binaries["kube-apiserver"]), f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki.server_crt}", f"--tls-private-key-file={pki.server_key}",
                f"--client-ca-file={pki.ca_crt}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=Node,RBAC",
                "--allow-privileged=true", "--endpoint-reconciler-type=none", "--profiling=false",
            ],
        )  # fmt: skip
        api = _tls_client(server, pki)
        with api() as client:
            _wait(
                "kube-apiserver /readyz",
                lambda: client.get("/readyz").is_success,
                processes,
                timeout,
            )
        start(
            "kube-controller-manager",
            [
                str(binaries["kube-controller-manager"]), f"--kubeconfig={kcm_config}",
                f"--authentication-kubeconfig={kcm_config}",
                f"--authorization-kubeconfig={kcm_config}",
                "--bind-address=127.0.0.1", f"--secure-port={kcm_port}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_crt}", f"--cluster-signing-cert-file={pki.ca_crt}",
                f"--cluster-signing-key-file={pki.ca_key}", "--controllers=*",
                "--use-service-account-credentials=false", "--leader-elect=false",
                "--profiling=false",
            ],
        )  # fmt: skip
        _wait(
            "kube-controller-manager /healthz",
            lambda: (
                httpx.get(  # its own self-signed loopback certificate: nothing to verify against
                    f"https://127.0.0.1:{kcm_port}/healthz",
                    verify=False,  # noqa: S501
                    timeout=2,
                ).is_success
            ),
            processes,
            timeout,
        )
        with api() as client:  # the service-account controller runs: namespaces are usable
            _wait(
                "the default ServiceAccount",
                lambda: client.get("/api/v1/namespaces/default/serviceaccounts/default").is_success,
                processes,
                timeout,
            )
        ready = time.monotonic() - started
        rss = {p.name: _rss_mb(p.proc.pid) for p in processes}
        print(
            f"\nk8s control plane {K8S_VERSION}: ready in {ready:.1f} s; RSS "
            + ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items())
            + f" (total {sum(rss.values()):.0f} MB); logs in {folder}"
        )
        yield Cluster(kubeconfig=admin, server=server, local=True, logs=folder, _client_factory=api)


@contextmanager
def external_cluster(kubeconfig: Path, folder: Path, timeout: float = 30) -> Iterator[Cluster]:
    """Use the disposable cluster of ``kubeconfig``; start only a ``kubectl proxy`` for HTTP."""
    if not kubeconfig.is_file():
        raise K8sUnavailable(
            f"{KUBECONFIG_ENV}={kubeconfig} is not a file: point it at a kubeconfig"
        )
    kubectl = str(kubectl_binary())
    server = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "config", "view", "--minify", "-o",
         "jsonpath={.clusters[0].cluster.server}"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    log = folder / "kubectl-proxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [kubectl, "--kubeconfig", str(kubeconfig), "proxy", "--address=127.0.0.1",
             f"--port={port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(
            f"kubectl proxy to {server}",
            lambda: httpx.get(f"{base}/readyz", timeout=5).is_success,
            [_Process("kubectl-proxy", proc, log)],
            timeout,
        )
        yield Cluster(
            kubeconfig=kubeconfig,
            server=server,
            local=False,
            _client_factory=lambda: httpx.Client(base_url=base, timeout=10),
        )
    finally:
        with_group_stop(proc)


@contextmanager
def cluster_from_env(folder: Path) -> Iterator[Cluster]:
    """``external_cluster`` when ``SLIPWAY_TEST_KUBECONFIG`` is set, else ``local_cluster``."""
    if kubeconfig := os.environ.get(KUBECONFIG_ENV):
        with external_cluster(Path(kubeconfig), folder) as cluster:
            yield cluster
    else:
        with local_cluster(folder) as cluster:
            yield cluster


# --------------------------------------------------------------------------------------------
# helpers for tests


def ensure_namespace(
    cluster: Cluster, name: str, labels: dict[str, str], timeout: float = 30
) -> None:
    """Create (or relabel) namespace ``name`` and wait for its default ServiceAccount."""
    with cluster.api() as client:
        response = client.post(
            "/api/v1/namespaces",
            json={
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": labels},
            },
        )
        if response.status_code == 409:
            response = client.patch(
                f"/api/v1/namespaces/{name}",
                json={"metadata": {"labels": labels}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
        response.raise_for_status()
        deadline = time.monotonic() + timeout
        while not client.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").is_success:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"namespace {name} has no default ServiceAccount after {timeout} s"
                )
            time.sleep(0.1)
