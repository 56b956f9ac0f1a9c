"""``slipway alarms``: generate the files derived from the KPI catalog, diff and apply alarms.

Mounted by the main CLI as ``app.add_typer(alarms_cli.app, name="alarms")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from slipway.errors import ConfigError, SlipwayError

if TYPE_CHECKING:
    from slipway.monitoring import KpiCatalog

app = typer.Typer(help="KPI alert rules, CloudWatch alarms and dashboards.", no_args_is_help=True)

CatalogOption = Annotated[Path, typer.Option("--catalog", help="The KPI catalog.", dir_okay=False)]
EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="CloudWatch endpoint (default: SLIPWAY_AWS_ENDPOINT_URL)."),
]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="AWS region (default: SLIPWAY_AWS_REGION).")
]
TopicOption = Annotated[
    list[str] | None,
    typer.Option("--sns-topic-arn", help="SNS topic for alarm and OK actions (repeatable)."),
]


def _catalog(path: Path) -> KpiCatalog:
    from slipway.monitoring import load_kpi_catalog

    try:
        return load_kpi_catalog(path)
    except SlipwayError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e


@app.command()
def generate(
    catalog: CatalogOption = Path("monitoring/kpis.yaml"),
    root: Annotated[Path, typer.Option("--root", help="Project checkout to write into.")] = Path(
        "."
    ),
) -> None:
    """Write the alert rules, PrometheusRule, promtool tests, dashboards and agent config."""
    from slipway.monitoring import check_runbook_anchors, write_generated

    kpis = _catalog(catalog)
    try:
        check_runbook_anchors(kpis, (root / "docs" / "kpis.md").read_text(encoding="utf-8"))
        paths = write_generated(kpis, root)
    except (SlipwayError, OSError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
    for path in paths:
        typer.echo(f"wrote {path}")


@app.command()
def diff(
    catalog: CatalogOption = Path("monitoring/kpis.yaml"),
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
    sns_topic_arn: TopicOption = None,
) -> None:
    """Show what `apply` would create, update or delete; exit 1 when something differs."""
    from slipway.monitoring import diff_alarms

    kpis = _catalog(catalog)
    with _one_line_errors():
        client, topics, _ = _aws(region, endpoint_url, sns_topic_arn)
        changes = diff_alarms(client, kpis, topics)
    for change in changes:
        typer.echo(str(change))
        for name, (old, new) in change.details.items():
            typer.echo(f"    {name}: {old!r} -> {new!r}")
    if not changes:
        typer.echo("no changes")
    raise typer.Exit(1 if changes else 0)


@app.command()
def apply(
    catalog: CatalogOption = Path("monitoring/kpis.yaml"),
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
    sns_topic_arn: TopicOption = None,
    prune: Annotated[
        bool, typer.Option(help="Delete slipway- alarms that are not in the catalog.")
    ] = True,
) -> None:
    """Create or update the CloudWatch alarms and dashboard; idempotent."""
    from slipway.monitoring import apply_alarms, apply_cloudwatch_dashboard

    kpis = _catalog(catalog)
    with _one_line_errors():
        client, topics, region = _aws(region, endpoint_url, sns_topic_arn)
        if not topics:
            typer.echo(
                "warning: no --sns-topic-arn or SLIPWAY_ALARM_TOPIC_ARN, the alarms notify nobody",
                err=True,
            )
        changes = apply_alarms(client, kpis, topics, prune=prune)
        dashboard_changed = apply_cloudwatch_dashboard(client, kpis, region)
    for change in changes:
        typer.echo(str(change))
    if dashboard_changed:
        typer.echo("put dashboard slipway")
    if not changes and not dashboard_changed:
        typer.echo("no changes")


def _aws(
    region: str | None, endpoint_url: str | None, topics: list[str] | None
) -> tuple[Any, list[str], str]:
    """The CloudWatch client, SNS topics and region: the options, else the settings.

    Settings are loaded once, and only when an option is missing: ``--region`` falls back to
    SLIPWAY_AWS_REGION, ``--endpoint-url`` to SLIPWAY_AWS_ENDPOINT_URL and ``--sns-topic-arn``
    to SLIPWAY_ALARM_TOPIC_ARN, as in ``slipway mirror``.
    """
    from slipway.monitoring import cloudwatch_client

    if region is None or endpoint_url is None or not topics:
        from slipway.config import load_settings

        settings = load_settings()
        region = region or settings.aws_region
        endpoint_url = endpoint_url or settings.aws_endpoint_url
        if not topics:
            topics = [settings.alarm_topic_arn] if settings.alarm_topic_arn else []
    try:
        client = cloudwatch_client(region, endpoint_url)
    except ValueError as e:
        # botocore rejects a malformed endpoint or region with a bare ValueError
        raise ConfigError(
            f"cannot build a CloudWatch client for region {region!r} and endpoint "
            f"{endpoint_url!r}: {e}; fix --region/--endpoint-url or SLIPWAY_AWS_REGION/"
            "SLIPWAY_AWS_ENDPOINT_URL"
        ) from e
    return client, list(topics), region


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn a configuration or AWS failure into its message on stderr and exit code 2."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (SlipwayError, BotoCoreError, ClientError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
