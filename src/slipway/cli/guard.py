"""``slipway guard``: watch the model server's new revisions and roll bad ones back by itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slipway.cli.common import console, fails_cleanly


def register(app: typer.Typer) -> None:
    """Add the ``guard`` command to ``app``."""
    app.command("guard")(guard_cmd)


def _seconds(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    from slipway.errors import ConfigError
    from slipway.monitoring import duration_seconds

    try:
        return duration_seconds(value)
    except ValueError as e:
        raise ConfigError(f"{option} {value!r}: {e}") from e


@fails_cleanly
def guard_cmd(
    prometheus_url: Annotated[
        str | None,
        typer.Option(help="Prometheus' URL, e.g. http://prometheus-operated.monitoring.svc:9090."),
    ] = None,
    alarm_queue_url: Annotated[
        str | None,
        typer.Option(
            help="SQS queue subscribed to the SNS topic of the KPIs' CloudWatch alarms: a KPI "
            "whose alarm goes into ALARM during a window fails its checks (with or without "
            "Prometheus)."
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Namespace of the Deployment (default SLIPWAY_NAMESPACE).")
    ] = None,
    deployment: Annotated[
        str, typer.Option(help="The model server Deployment.")
    ] = "slipway-server",
    interval: Annotated[
        str | None, typer.Option(help="Time between checks, e.g. 15s (default: the catalog's).")
    ] = None,
    bake_window: Annotated[
        str | None, typer.Option(help="How long a new revision is watched (default: catalog).")
    ] = None,
    grace_period: Annotated[
        str | None, typer.Option(help="How long missing data is not counted (default: catalog).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Decide and report only: no rollback, tag or annotation.")
    ] = False,
    once: Annotated[bool, typer.Option(help="One check, then exit (cron, tests).")] = False,
    catalog: Annotated[
        Path | None,
        typer.Option(help="The KPI catalog (default: monitoring/kpis.yaml of the project)."),
    ] = None,
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file (default: in-cluster, else KUBECONFIG).")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context.")] = None,
    env: Annotated[str, typer.Option(help="Overlay named in the audit records.")] = "prod",
    rollout_timeout: Annotated[
        str, typer.Option(help="How long a rollback waits for its rollout (90s, 5m).")
    ] = "5m",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of the guard's /metrics; 0 = none.")
    ] = 9109,
) -> None:
    """Bake every new revision of the model server; roll it back when a rollback KPI fails.

    Reads the rollback KPIs of the KPI catalog (their guard blocks), queries Prometheus for the
    new version every interval (and/or reads the KPIs' CloudWatch alarm notifications from an
    SQS queue), rolls back like `slipway rollback` (Deployment, champion alias,
    marker, audit record) after the KPI's consecutive failing checks, and tags a version that
    passes its window `verified`. Pause it with the Deployment annotation
    guard.slipway.io/paused=true.
    """
    import logging
    import signal
    import threading

    from slipway.config import load_settings
    from slipway.guard import (
        AlarmQueue,
        DeploymentApi,
        Guard,
        GuardMetrics,
        GuardOptions,
        PrometheusClient,
        load_api_client,
        policy_from_catalog,
        sqs_client,
    )
    from slipway.monitoring import load_kpi_catalog
    from slipway.release import parse_duration

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    parse_duration(rollout_timeout)
    from slipway.release import DEPLOYMENT

    if deployment != DEPLOYMENT:
        from slipway.errors import ConfigError

        raise ConfigError(
            f"--deployment {deployment!r}: the release library reads the served model version "
            f"from the Deployment {DEPLOYMENT!r} (manifests/base) and rolls that one back; "
            f"name the model server {DEPLOYMENT!r}"
        )
    if prometheus_url is None and alarm_queue_url is None:
        from slipway.errors import ConfigError

        raise ConfigError(
            "nothing to check: pass --prometheus-url (in-cluster Prometheus) and/or "
            "--alarm-queue-url (the SQS queue of the KPIs' CloudWatch alarms, docs/rollback.md)"
        )
    options = GuardOptions(env=env, dry_run=dry_run, rollout_timeout=rollout_timeout)
    path = catalog or settings.project_dir / "monitoring" / "kpis.yaml"
    policy = policy_from_catalog(load_kpi_catalog(path)).with_times(
        interval_s=_seconds(interval, "--interval"),
        bake_window_s=_seconds(bake_window, "--bake-window"),
        grace_period_s=_seconds(grace_period, "--grace-period"),
    )
    prometheus = PrometheusClient(prometheus_url) if prometheus_url else None
    alarms = None
    if alarm_queue_url:
        client = sqs_client(settings.aws_region, settings.aws_endpoint_url)
        alarms = AlarmQueue(alarm_queue_url, client, [check.name for check in policy.checks])
    api_client, where = load_api_client(kubeconfig, context)
    cluster = DeploymentApi(
        api_client, namespace=namespace or settings.namespace, name=deployment, context=where
    )
    from prometheus_client import CollectorRegistry

    metrics = GuardMetrics(CollectorRegistry(), dry_run)
    guard = Guard(
        settings, policy, cluster, prometheus, metrics=metrics, options=options, alarms=alarms
    )
    mode = " (dry run: report only)" if dry_run else ""
    sources = [prometheus.base_url] if prometheus else []
    sources += [f"CloudWatch alarms via {alarm_queue_url}"] if alarm_queue_url else []
    console.print(
        f"guarding deployment/{deployment} in {cluster.namespace} ({where}) with "
        f"{len(policy.checks)} KPIs from {' and '.join(sources)}, every "
        f"{policy.interval_s:g} s, bake window {policy.bake_window_s:g} s{mode}"
    )
    if once:
        report = guard.check()
        console.print(f"{report.action}: {report.detail}", soft_wrap=True)
        if report.action == "error":  # Prometheus (or the queue) did not answer: no check
            raise typer.Exit(1)
        return
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, registry=metrics.registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    guard.run(stop)
