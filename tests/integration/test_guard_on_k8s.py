"""``slipway guard`` end to end: a real control plane, a real Prometheus, real model servers.

The release world of ``test_release_on_k8s`` (a real kube-apiserver + controllers with the fake
kubelet, MLflow on SQLite with registered versions, a local model store) plus:

* one real ``slipway serve`` process per model version, each serving its own package: a good
  logistic regression, and bad ones (a model that raises on every prediction, so the server
  answers 500; one whose predictions are all one class);
* Debian's real ``prometheus`` scraping them every second (the guard's expressions join
  ``slipway_model_info`` on (job, instance) for the version, as in production);
* a traffic thread that sends inference requests to the process of the version the live
  Deployment serves (the fake kubelet has no network: the test routes what a Service would).

The guard runs in-process (``Guard.check`` every second, as ``slipway guard`` does every
interval), with a short bake window. After the rollback the Deployment, the registry alias,
the champion marker and the audit trail must agree, and the audit record must name the KPI,
its value and its threshold.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from slipway.data.table import TARGET
from slipway.guard import (
    DeploymentApi,
    Guard,
    GuardOptions,
    PrometheusClient,
    load_api_client,
    policy_from_catalog,
)
from slipway.guard.runner import TAG_REJECTED, TAG_VERIFIED
from slipway.guard.state import REJECTED, RESTORED, WINDOW, decode_rejected, decode_window
from slipway.monitoring import load_kpi_catalog
from slipway.packaging.package import PackageInfo, build_package
from tests.integration import test_release_on_k8s as release
from tests.integration.test_release_on_k8s import World
from tests.support import REPO
from tests.support.processes import free_port, running, wait_http
from tests.support.serving import (
    INFER,
    MODEL,
    dataset,
    features,
    infer_body,
    install_package,
    trained,
)

pytestmark = pytest.mark.integration
#: The release tests' ``world`` fixture, here named ``released``.
released = release.world

SCRAPE_S = 1
INTERVAL_S = 1.0


# --------------------------------------------------------------------------------------------
# model packages: good and deliberately bad


def _package(model, version: str) -> dict[str, bytes]:
    info = PackageInfo(
        model_name=MODEL,
        version_code=version,
        run_id="0a1b2c3d" * 4,
        registry_version=1,
        dataset={"version": "v2", "path": "data/breast-cancer/v2.csv", "md5": "0" * 32, "rev": ""},
        git_commit="test",
        metrics={"roc_auc": 0.99},
    )
    return build_package(model, features(), info, float(dataset()[TARGET].mean()), onnx=False)


def _raising_model():
    """A fitted pipeline whose classifier's weights no longer fit the inputs: predict raises."""
    import copy

    model = copy.deepcopy(trained())
    clf = model.named_steps["clf"]
    clf.coef_ = clf.coef_[:, :-1].copy()  # 29 weights for 30 features: ValueError on predict
    return model


def _one_class_model():
    """A fitted pipeline that predicts the positive class for every input."""
    import copy

    model = copy.deepcopy(trained())
    model.named_steps["clf"].intercept_ = model.named_steps["clf"].intercept_ + 1e3
    return model


# --------------------------------------------------------------------------------------------
# processes: model servers and Prometheus


@contextmanager
def _server(tmp_path: Path, version: str, files: dict[str, bytes]) -> Iterator[str]:
    folder = tmp_path / f"serve-{version}"
    install_package(folder / "efs", files, version)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SLIPWAY_STATE_DIR": str(folder / "state"),
        "SLIPWAY_EFS_ROOT": str(folder / "efs"),
        "SLIPWAY_MODEL_VERSION": version,
        "SLIPWAY_MODEL_NAME": MODEL,
    }
    argv = [sys.executable, "-m", "slipway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(argv, f"{base}/v2/health/live", folder / "server.log", env=env):
        wait_http(f"{base}/v2/health/ready", 60)
        yield base


@contextmanager
def _prometheus(tmp_path: Path, targets: list[str]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is required: `make install` (scripts/ensure-debian-tools.sh "
            "promtool:prometheus installs Debian's prometheus package)",
            pytrace=False,
        )
    folder = tmp_path / "prometheus"
    folder.mkdir()
    config = {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_S}s"},
        "scrape_configs": [
            {
                "job_name": "slipway-server",
                "static_configs": [{"targets": [t.removeprefix("http://") for t in targets]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    with running(argv, f"http://127.0.0.1:{port}/-/ready", folder / "prometheus.log"):
        yield f"http://127.0.0.1:{port}"


class Traffic:
    """Sends inference requests to the server of whatever version the Deployment serves."""

    def __init__(self, world: World, servers: dict[str, str]) -> None:
        self.world, self.servers = world, servers
        self.stop = threading.Event()
        self.sent: dict[str, dict[int, int]] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # rows in turn from the whole table: the positive rate of the answers is the data's,
        # as the prediction-drift KPI expects of real traffic
        rows = len(features()) - 1
        bodies = [infer_body(rows=2, start=start) for start in range(0, rows, 7)]
        n = 0
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                _, version = self.world.served()
                for _ in range(10):
                    body, n = bodies[n % len(bodies)], n + 1
                    status = http.post(self.servers[version] + INFER, json=body).status_code
                    counts = self.sent.setdefault(version, {})
                    counts[status] = counts.get(status, 0) + 1
                    self.stop.wait(0.02)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


# --------------------------------------------------------------------------------------------
# the guard


def _guard(world: World, prometheus_url: str, bake_window_s: float = 60) -> Guard:
    policy = policy_from_catalog(load_kpi_catalog(REPO / "monitoring" / "kpis.yaml"))
    policy = policy.with_times(interval_s=INTERVAL_S, grace_period_s=4, bake_window_s=bake_window_s)
    api_client, context = load_api_client(str(world.cluster.kubeconfig))
    cluster = DeploymentApi(api_client, namespace=world.namespace, context=context)
    return Guard(
        world.settings,
        policy,
        cluster,
        PrometheusClient(prometheus_url),
        registry=world.client,
        options=GuardOptions(env="prod", rollout_timeout="60s"),
    )


def _run_until(guard: Guard, done, timeout: float) -> list[str]:
    actions, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = guard.check()
        actions.append(report.action)
        if done(report):
            return actions
        if report.action == "closed" and not done(report):
            raise AssertionError(f"the window closed otherwise: {report.window}; {actions}")
        time.sleep(INTERVAL_S)
    raise AssertionError(f"the guard did not finish within {timeout} s: {actions[-20:]}")


def _annotations(world: World) -> dict[str, str]:
    return world.deployment()["metadata"]["annotations"]


def test_guard_verifies_a_good_version_and_rolls_a_failing_one_back(
    released: World, tmp_path: Path
) -> None:
    world = released
    good, bad = world.codes[:2]
    with ExitStack() as stack:
        servers = {
            good: stack.enter_context(_server(tmp_path, good, _package(trained(), good))),
            bad: stack.enter_context(_server(tmp_path, bad, _package(_raising_model(), bad))),
        }
        prometheus = stack.enter_context(_prometheus(tmp_path, list(servers.values())))
        world.deploy(1)
        stack.enter_context(Traffic(world, servers))

        # the good version bakes for 6 s with traffic and no failure: verified
        guard = _guard(world, prometheus, bake_window_s=6)
        _run_until(guard, lambda r: r.action == "pass", timeout=30)
        window = decode_window(_annotations(world))
        assert (window.revision, window.version, window.verdict) == (1, good, "passed")
        tags = world.client.get_model_version(world.settings.model_name, "1").tags
        assert tags[TAG_VERIFIED] == "true"
        assert tags["verified_revision"] == "1"

        # the bad version answers 500 to every request: rolled back to revision 1's template
        guard = _guard(world, prometheus, bake_window_s=60)
        world.deploy(2)
        started = time.monotonic()
        actions = _run_until(guard, lambda r: r.action == "rollback", timeout=40)
        took = time.monotonic() - started
        print(f"\nrolled back {took:.1f} s after the bad deploy: {actions}")
        rolled = _annotations(world)
        after = guard.check()

    assert world.served() == (3, good)
    assert world.ready_pods_serve(good)
    assert world.champion() == "1"
    assert world.marker() == (good, 1)
    record = world.trail()[-1]
    assert (record.action, record.actor, record.from_version, record.to_version) == (
        "rollback",
        "slipway-guard",
        bad,
        good,
    )
    assert record.revision == 3
    assert "KPI http-5xx-ratio = 1 > threshold 0.05" in record.reason
    assert "3 consecutive checks" in record.reason
    assert "revision 2" in record.reason
    withdrawn = world.client.get_model_version(world.settings.model_name, "2").tags
    assert withdrawn["withdrawn_reason"] == record.reason
    assert withdrawn[TAG_REJECTED] == record.reason

    annotations = rolled
    window = decode_window(annotations)
    assert (window.revision, window.version, window.verdict) == (2, bad, "rolled-back")
    assert window.failures["http-5xx-ratio"] == 3
    assert decode_rejected(annotations) == [bad]
    assert annotations[RESTORED] == "3"
    # the next check started the restored revision's window, watched only, and changed nothing
    assert after.action.startswith("started"), after
    assert (after.window.revision, after.window.mode) == (3, "watch")
    assert world.served() == (3, good)
    assert WINDOW in _annotations(world)
    assert json.loads(_annotations(world)[REJECTED]) == [bad]
