"""``slipway mirror``: publish Prometheus metrics to CloudWatch for the KPI alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slipway.cli.common import console, fails_cleanly


def register(app: typer.Typer) -> None:
    """Add the ``mirror`` command to ``app``."""
    app.command("mirror")(mirror_cmd)


@fails_cleanly
def mirror_cmd(
    target: Annotated[
        list[str],
        typer.Option(
            "--target",
            help="A /metrics (or Prometheus /federate) URL to scrape; repeat for several.",
        ),
    ],
    interval: Annotated[float, typer.Option(min=1.0, help="Seconds between scrapes.")] = 60.0,
    endpoint_url: Annotated[
        str | None, typer.Option(help="CloudWatch endpoint (default: SLIPWAY_AWS_ENDPOINT_URL).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: SLIPWAY_AWS_REGION).")
    ] = None,
    once: Annotated[bool, typer.Option(help="One scrape and one flush, then exit.")] = False,
    allowlist: Annotated[
        Path | None,
        typer.Option(
            help="allowlist.json (the ConfigMap) or a KPI catalog YAML "
            "(default: monitoring/kpis.yaml of the project)."
        ),
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of /metrics and /healthz; 0 = none.")
    ] = 9108,
    max_buffered: Annotated[
        int, typer.Option(min=1000, help="Points kept while CloudWatch is unreachable.")
    ] = 50_000,
    namespace: Annotated[str, typer.Option(help="CloudWatch namespace.")] = "Slipway",
) -> None:
    """Scrape Prometheus targets every interval and publish them to CloudWatch."""
    import logging
    import signal
    import threading

    from slipway.config import load_settings
    from slipway.monitoring.mirror import (
        Converter,
        DimensionRules,
        Mirror,
        MirrorMetrics,
        Publisher,
        PublishLimits,
        mirror_client,
        serve_health,
    )
    from slipway.monitoring.mirror.health import loop_is_alive

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    rules = DimensionRules.from_file(allowlist or settings.project_dir / "monitoring" / "kpis.yaml")
    for url in target:
        if not url.startswith(("http://", "https://")):
            from slipway.errors import ConfigError

            raise ConfigError(f"--target {url!r} is not an http(s) URL")
    metrics = MirrorMetrics()
    client = mirror_client(region or settings.aws_region, endpoint_url or settings.aws_endpoint_url)
    publisher = Publisher(
        client, metrics, namespace=namespace, limits=PublishLimits(max_buffered=max_buffered)
    )
    mirror = Mirror(target, Converter(rules), publisher, metrics)
    server = None
    if port and not once:
        server = serve_health(metrics, port, loop_is_alive(metrics, max(3 * interval, 60.0)))
    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(
        f"mirroring {len(rules.sets)} metrics from {', '.join(target)} to CloudWatch "
        f"namespace {namespace} every {interval:g} s"
    )
    try:
        mirror.run(interval, stop=stop, once=once)
    finally:
        if server is not None:
            server.shutdown()
    if publisher.pending:
        raise typer.Exit(1)
