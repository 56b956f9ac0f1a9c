"""``slipway guard`` end to end: a real control plane, a real Prometheus, real model servers.

The release world of ``tests/support/release_world.py`` (a real kube-apiserver + controllers
with the fake kubelet, MLflow on SQLite with registered versions, a local model store) and the
processes of ``tests/support/guard.py``:

* one real ``slipway serve`` process per model version, each serving its own package: a good
  logistic regression, and bad ones (a model that raises on every prediction, so the server
  answers 500; one whose predictions are all one class; the good model served by a process
  whose every prediction takes 0.6 s longer, ``tests.support.slow_serve``: a slow version);
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
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from slipway.cli.guard import register
from slipway.config import load_settings
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
from tests.support import REPO, release_world
from tests.support.guard import (
    SLOW_S,
    Traffic,
    model_server,
    one_class_model,
    package,
    prometheus,
    raising_model,
    server_deployment,
)
from tests.support.k8s import ensure_namespace
from tests.support.release_world import World
from tests.support.serving import (
    trained,
)

pytestmark = pytest.mark.integration
#: The release world (tests/support/release_world.py), here named ``released``.
released = release_world.world

SCRAPE_S = 1
INTERVAL_S = 1.0


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


def _wait(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout} s")


def _annotations(world: World) -> dict[str, str]:
    return world.deployment()["metadata"]["annotations"]


def _assert_rolled_back(world: World, bad: str, good: str, revision: int, kpi: str) -> None:
    """Deployment, alias, marker, audit record and registry tags agree on the rollback."""
    assert world.served() == (revision, good)
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
    assert record.revision == revision
    assert f"KPI {kpi} = " in record.reason
    assert "consecutive checks" in record.reason
    registered = str(world.codes.index(bad) + 1)
    withdrawn = world.client.get_model_version(world.settings.model_name, registered).tags
    assert withdrawn["withdrawn_reason"] == record.reason
    assert withdrawn[TAG_REJECTED] == record.reason


def test_guard_verifies_a_good_version_and_rolls_bad_ones_back(
    released: World, tmp_path: Path
) -> None:
    world = released
    good, failing, one_class, slow = world.codes[:4]
    with ExitStack() as stack:
        servers = {
            good: stack.enter_context(model_server(tmp_path, good, package(trained(), good))),
            failing: stack.enter_context(
                model_server(tmp_path, failing, package(raising_model(), failing))
            ),
            one_class: stack.enter_context(
                model_server(tmp_path, one_class, package(one_class_model(), one_class))
            ),
            slow: stack.enter_context(
                model_server(tmp_path, slow, package(trained(), slow), delay_s=SLOW_S)
            ),
        }
        prom = stack.enter_context(prometheus(tmp_path, list(servers.values())))
        world.deploy(1)
        stack.enter_context(Traffic(lambda: world.served()[1], servers))

        # the good version bakes for 6 s with traffic and no failing KPI: verified
        guard = _guard(world, prom, bake_window_s=6)
        _run_until(guard, lambda r: r.action == "pass", timeout=30)
        window = decode_window(_annotations(world))
        assert (window.revision, window.version, window.verdict) == (1, good, "passed")
        tags = world.client.get_model_version(world.settings.model_name, "1").tags
        assert tags[TAG_VERIFIED] == "true"
        assert tags["verified_revision"] == "1"

        # a version that answers 500 to every request: rolled back to revision 1's template
        guard = _guard(world, prom, bake_window_s=60)
        world.deploy(2)
        started = time.monotonic()
        actions = _run_until(guard, lambda r: r.action == "rollback", timeout=40)
        print(f"\n5xx: rolled back {time.monotonic() - started:.1f} s after deploy: {actions}")
        rolled = _annotations(world)
        _assert_rolled_back(world, failing, good, revision=3, kpi="http-5xx-ratio")
        # no checkout in the guard: the overlay file still pins what `slipway deploy` wrote
        assert world.pinned() == failing
        assert "KPI http-5xx-ratio = 1 > threshold 0.05 in 3 consecutive checks" in (
            world.trail()[-1].reason
        )
        window = decode_window(rolled)
        assert (window.revision, window.version, window.verdict) == (2, failing, "rolled-back")
        assert window.failures["http-5xx-ratio"] == 3
        assert decode_rejected(rolled) == [failing]
        assert rolled[RESTORED] == "3"
        # the next check starts the restored revision's window, watched only, changing nothing
        after = guard.check()
        assert after.action.startswith("started"), after
        assert (after.window.revision, after.window.mode) == (3, "watch")
        assert world.served() == (3, good)

        # a version whose predictions are all one class: the prediction-drift KPI rolls it back
        world.deploy(3)
        started = time.monotonic()
        actions = _run_until(guard, lambda r: r.action == "rollback", timeout=40)
        print(f"one class: rolled back {time.monotonic() - started:.1f} s after deploy: {actions}")
        _assert_rolled_back(world, one_class, good, revision=5, kpi="positive-rate-drift")
        assert "> threshold 0.15 in 4 consecutive checks" in world.trail()[-1].reason
        annotations = _annotations(world)
        assert decode_rejected(annotations) == [failing, one_class]
        assert WINDOW in annotations
        assert json.loads(annotations[REJECTED]) == [failing, one_class]

        # a version that answers correctly but slowly: the p99-latency KPI rolls it back
        world.deploy(4)
        started = time.monotonic()
        actions = _run_until(guard, lambda r: r.action == "rollback", timeout=40)
        print(f"slow: rolled back {time.monotonic() - started:.1f} s after deploy: {actions}")
        _assert_rolled_back(world, slow, good, revision=7, kpi="p99-latency")
        reason = world.trail()[-1].reason
        assert "> threshold 0.5 in 3 consecutive checks" in reason
        value = float(reason.split("KPI p99-latency = ")[1].split()[0])
        assert 0.5 < value <= 1.0  # every request in the histogram's (0.5, 1] bucket
        window = decode_window(_annotations(world))
        assert (window.revision, window.version, window.verdict) == (6, slow, "rolled-back")
        assert window.failures["p99-latency"] == 3
        assert not window.failures.get("http-5xx-ratio")  # slow, not failing
        assert decode_rejected(_annotations(world)) == [failing, one_class, slow]
        assert world.served() == (7, good)
    # the audit trail tells the whole story, oldest first
    assert [(r.action, r.actor, r.to_version) for r in world.trail()] == [
        ("deploy", "carol", good),
        ("deploy", "carol", failing),
        ("rollback", "slipway-guard", good),
        ("deploy", "carol", one_class),
        ("rollback", "slipway-guard", good),
        ("deploy", "carol", slow),
        ("rollback", "slipway-guard", good),
    ]


# --------------------------------------------------------------------------------------------
# the loop and the command, on the control plane alone (no Prometheus: checks fail, windows start)


@pytest.fixture
def bare_namespace(k8s_cluster, k8s_pods) -> Iterator[str]:
    namespace = f"guard-{uuid.uuid4().hex[:8]}"
    ensure_namespace(k8s_cluster, namespace, {})
    yield namespace
    k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _apply(cluster, obj: dict) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(obj))


def _window(cluster, namespace: str):
    out = cluster.kubectl("get", "deployment/slipway-server", "-n", namespace, "-o", "json")
    return decode_window(json.loads(out.stdout)["metadata"].get("annotations"))


def test_the_watch_wakes_the_loop_on_a_new_revision(k8s_cluster, bare_namespace, tmp_path) -> None:
    v1, v2 = "v1-20260101-0a1b2c3d", "v2-20260101-0a1b2c3d"
    _apply(k8s_cluster, server_deployment(bare_namespace, v1))
    api_client, context = load_api_client(str(k8s_cluster.kubeconfig))
    cluster = DeploymentApi(api_client, namespace=bare_namespace, context=context)
    policy = policy_from_catalog(load_kpi_catalog(REPO / "monitoring" / "kpis.yaml"))
    policy = policy.with_times(interval_s=60)  # only the watch can make the loop check sooner
    settings = load_settings(state_dir=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/x.db")
    guard = Guard(settings, policy, cluster, PrometheusClient("http://127.0.0.1:9"))
    stop = threading.Event()
    loop = threading.Thread(target=guard.run, args=(stop,), daemon=True)
    loop.start()
    try:
        _wait(lambda: _window(k8s_cluster, bare_namespace) or False, 20, "first window")
        assert _window(k8s_cluster, bare_namespace).version == v1
        _apply(k8s_cluster, server_deployment(bare_namespace, v2))
        started = time.monotonic()
        window = _wait(
            lambda: (w := _window(k8s_cluster, bare_namespace)) and w.revision == 2 and w,
            20,
            "a window for revision 2",
        )
        assert window.version == v2
        assert time.monotonic() - started < 15  # woken by the watch, not the 60 s interval
        time.sleep(3)
        # two checks, one per revision: the guard's own annotation writes (which bump the
        # Deployment's generation) do not wake it again
        errors = guard.metrics.registry.get_sample_value(
            "slipway_guard_checks_total", {"result": "error"}
        )
        assert errors == 2
    finally:
        stop.set()
        loop.join(timeout=70)
    assert not loop.is_alive()


def test_guard_once_reports_a_prometheus_it_cannot_reach(k8s_cluster, bare_namespace) -> None:
    v1 = "v1-20260101-0a1b2c3d"
    _apply(k8s_cluster, server_deployment(bare_namespace, v1))
    app = typer.Typer()
    register(app)
    args = [
        "--once", "--prometheus-url", "http://127.0.0.1:9", "--namespace", bare_namespace,
        "--kubeconfig", str(k8s_cluster.kubeconfig), "--port", "0",
    ]  # fmt: skip
    env = {"SLIPWAY_PROJECT_DIR": str(REPO)}
    dry = CliRunner().invoke(app, ["--dry-run", *args], env=env)
    assert dry.exit_code == 1, dry.output
    assert "dry run: report only" in dry.output
    assert "Prometheus at http://127.0.0.1:9 is unreachable" in dry.output
    assert _window(k8s_cluster, bare_namespace) is None  # a dry run writes nothing

    real = CliRunner().invoke(app, args, env=env)
    assert real.exit_code == 1, real.output
    window = _window(k8s_cluster, bare_namespace)
    assert (window.revision, window.version, window.checks) == (1, v1, 0)

    bad = CliRunner().invoke(app, [*args[:-2], "--port", "0", "--interval", "5 s"], env=env)
    assert bad.exit_code == 1
    assert "--interval '5 s'" in bad.output
    other = CliRunner().invoke(app, [*args, "--deployment", "my-server"], env=env)
    assert other.exit_code == 1
    assert "--deployment 'my-server'" in other.output
    assert _window(k8s_cluster, bare_namespace).checks == 0  # refused before any change


# --------------------------------------------------------------------------------------------
# the CloudWatch path: KPI alarms -> SNS topic -> SQS queue -> the guard (no Prometheus)

#: moto keeps one backend per region: this file's own (no other test uses it)
ALARM_REGION = "sa-east-1"


def test_guard_rolls_back_on_a_cloudwatch_alarm_from_sns(
    released: World, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The KPI alarms created by ``apply_alarms`` notify a real SNS topic on moto; a real SQS
    queue subscribed to it (with the infra's filter policy) holds the notifications; the guard,
    without any Prometheus, reads the queue and rolls the new version back on the real control
    plane once the rollback KPI's alarm counted ``consecutive`` failing checks.

    moto 5 changes the alarm's state on ``set_alarm_state`` but runs none of its actions (its
    ``CloudWatchBackend.set_alarm_state`` only updates the state), so the test then publishes to
    the topic what CloudWatch would: the alarm notification JSON built from the described alarm
    (``tests/support/cloudwatch_alarms.py``).
    """
    from slipway.guard import AlarmQueue, sqs_client
    from slipway.monitoring import apply_alarms, cloudwatch_client, guard_alarm_filter_policy
    from tests.support.cloudwatch_alarms import alarm_message

    world = released
    v1, v2 = world.codes[:2]
    catalog = load_kpi_catalog(REPO / "monitoring" / "kpis.yaml")
    import boto3

    sns = boto3.client("sns", region_name=ALARM_REGION, endpoint_url=aws_env)
    sqs = sqs_client(ALARM_REGION, aws_env)
    cloudwatch = cloudwatch_client(ALARM_REGION, aws_env)
    topic = sns.create_topic(Name="slipway-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="slipway-guard-alarms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={
            "FilterPolicyScope": "MessageBody",
            "FilterPolicy": json.dumps(guard_alarm_filter_policy(catalog)),
        },
    )
    assert apply_alarms(cloudwatch, catalog, [topic])  # the project's alarms, actions = topic
    described = {
        a["AlarmName"]: a
        for a in cloudwatch.describe_alarms(AlarmNamePrefix="slipway-")["MetricAlarms"]
    }
    assert described["slipway-p99-latency"]["AlarmActions"] == [topic]
    assert described["slipway-p99-latency"]["OKActions"] == [topic]

    def fire(name: str, reason: str) -> None:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)
        alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        assert alarm["StateValue"] == "ALARM"
        sns.publish(
            TopicArn=topic,
            Subject=f'ALARM: "{name}" in South America (Sao Paulo)',
            Message=alarm_message(alarm, "ALARM", reason),
        )

    world.deploy(1)
    world.deploy(2)
    api_client, context = load_api_client(str(world.cluster.kubeconfig))
    cluster = DeploymentApi(api_client, namespace=world.namespace, context=context)
    policy = policy_from_catalog(catalog).with_times(interval_s=1, grace_period_s=1)
    alarms = AlarmQueue(queue_url, sqs, [c.name for c in policy.checks], wait_s=0)
    guard = Guard(
        world.settings, policy, cluster, None, registry=world.client,
        options=GuardOptions(env="prod", rollout_timeout="60s"), alarms=alarms,
    )  # fmt: skip
    first = guard.check()
    assert first.action == "started, wait"
    assert first.window.version == v2

    reason = (
        "Threshold Crossed: 5 out of the last 5 datapoints [0.987 (01/12/26 17:04:00)] were "
        "greater than the threshold (0.5) (minimum 5 datapoints for OK -> ALARM transition)."
    )
    fire("slipway-p95-latency", "Threshold Crossed: p95")  # not a rollback KPI: filtered out
    fire("slipway-p99-latency", reason)
    held = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert held["Attributes"]["ApproximateNumberOfMessages"] == "1"  # the filter policy at work
    actions = _run_until(guard, lambda r: r.action == "rollback", timeout=30)
    assert actions == ["wait", "wait", "rollback"]  # p99-latency: 3 consecutive checks
    assert world.served() == (3, v1)
    assert world.champion() == "1"
    assert world.marker() == (v1, 1)
    record = world.trail()[-1]
    assert (record.action, record.actor, record.from_version, record.to_version) == (
        "rollback",
        "slipway-guard",
        v2,
        v1,
    )
    assert record.reason.startswith(
        "slipway guard: KPI p99-latency (CloudWatch alarm slipway-p99-latency is ALARM: "
        "Threshold Crossed: 5 out of the last 5 datapoints [0.987"
    )
    assert "in 3 consecutive checks" in record.reason
    window = decode_window(_annotations(world))
    assert (window.revision, window.verdict, window.failures) == (
        2,
        "rolled-back",
        {"p99-latency": 3},
    )
    assert set(alarms.latest) == {"p99-latency"}  # the p95 alarm never reached the guard
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None
    # the restored revision's window started after the alarm: the alarm is not held against it
    after = guard.check()
    assert after.action == "started, wait", after
    assert not after.window.failures.get("p99-latency")


def test_guard_once_reads_an_alarm_queue_without_prometheus(
    k8s_cluster, bare_namespace, aws_env: str
) -> None:
    from slipway.guard import sqs_client

    _apply(k8s_cluster, server_deployment(bare_namespace, "v1-20260101-0a1b2c3d"))
    sqs = sqs_client(ALARM_REGION, aws_env)
    queue_url = sqs.create_queue(QueueName=f"guard-once-{bare_namespace}")["QueueUrl"]
    app = typer.Typer()
    register(app)
    args = [
        "--once", "--namespace", bare_namespace, "--kubeconfig", str(k8s_cluster.kubeconfig),
        "--port", "0",
    ]  # fmt: skip
    env = {
        "SLIPWAY_PROJECT_DIR": str(REPO),
        "SLIPWAY_AWS_REGION": ALARM_REGION,
        "SLIPWAY_AWS_ENDPOINT_URL": aws_env,
    }
    neither = CliRunner().invoke(app, args, env=env)
    assert neither.exit_code == 1
    assert "nothing to check: pass --prometheus-url" in neither.output
    assert _window(k8s_cluster, bare_namespace) is None  # refused before any change

    once = CliRunner().invoke(app, [*args, "--alarm-queue-url", queue_url], env=env)
    assert once.exit_code == 0, once.output
    assert f"CloudWatch alarms via {queue_url}" in " ".join(once.output.split())
    assert "started, wait:" in once.output  # checked: no alarm, no traffic seen, no failure
    window = _window(k8s_cluster, bare_namespace)
    assert (window.revision, window.failures, window.verdict) == (1, {}, None)

    gone = CliRunner().invoke(app, [*args, "--alarm-queue-url", queue_url + "-gone"], env=env)
    assert gone.exit_code == 1  # the queue cannot be read and there is no Prometheus: no check
    assert "could not read the alarm queue" in " ".join(gone.output.split())
    assert _window(k8s_cluster, bare_namespace) == window
