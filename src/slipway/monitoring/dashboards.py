"""Dashboards generated from the KPI catalog: Grafana (Prometheus) and CloudWatch.

Both show one graph per KPI, grouped by category, with the threshold drawn on it. The Grafana
panel plots the KPI's PromQL value (the expression the alert compares) and links to the runbook;
the CloudWatch widget plots the metric or metric-math expression its alarm watches.
"""

from __future__ import annotations

import json
from typing import Any

from slipway.monitoring.kpis import CATEGORIES, Kpi, KpiCatalog

GRAFANA_FILE = "monitoring/grafana/slipway.json"
CLOUDWATCH_DASHBOARD_NAME = "slipway"
_UNITS = {"seconds": "s", "ratio": "percentunit", "number": "short"}


def render_grafana_dashboard(catalog: KpiCatalog) -> str:
    """The dashboard JSON model (import it, or provision it from a ConfigMap)."""
    panels: list[dict[str, Any]] = []
    y = 0
    panel_id = 1
    for category in CATEGORIES:
        kpis = [kpi for kpi in catalog.kpis if kpi.category == category]
        if not kpis:
            continue
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": f"{category.capitalize()} KPIs",
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        for index, kpi in enumerate(kpis):
            grid = {"h": 8, "w": 8, "x": (index % 3) * 8, "y": y + (index // 3) * 8}
            panels.append(_panel(kpi, catalog, panel_id, grid))
            panel_id += 1
        y += ((len(kpis) + 2) // 3) * 8
    dashboard = {
        "uid": "slipway-kpis",
        "title": "slipway KPIs",
        "description": "Generated from monitoring/kpis.yaml by `slipway alarms generate`.",
        "tags": ["slipway", "kpi"],
        "timezone": "utc",
        "editable": False,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2) + "\n"


def _panel(kpi: Kpi, catalog: KpiCatalog, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": f"{kpi.summary} ({kpi.severity})",
        "description": kpi.description.strip(),
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": grid,
        "links": [{"title": "Runbook", "url": catalog.runbook_url(kpi)}],
        "targets": [
            {
                "refId": "A",
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": kpi.prometheus.expr.strip(),
                "legendFormat": "__auto",
            }
        ],
        "fieldConfig": {
            "defaults": {
                "unit": _UNITS[kpi.unit],
                "custom": {"thresholdsStyle": {"mode": "line+area"}},
                "thresholds": {"mode": "absolute", "steps": _threshold_steps(kpi)},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
    }


def _threshold_steps(kpi: Kpi) -> list[dict[str, Any]]:
    # Grafana colours the band *above* each step value: above the threshold is bad for ">"
    # KPIs, below it for "<" KPIs.
    if kpi.comparison.startswith("Greater"):
        return [{"color": "green", "value": None}, {"color": "red", "value": kpi.threshold}]
    return [{"color": "red", "value": None}, {"color": "green", "value": kpi.threshold}]


def render_cloudwatch_dashboard(catalog: KpiCatalog, region: str) -> str:
    """The CloudWatch dashboard body: one graph per KPI with its threshold, by category."""
    widgets: list[dict[str, Any]] = []
    y = 0
    for category in CATEGORIES:
        kpis = [kpi for kpi in catalog.kpis if kpi.category == category]
        if not kpis:
            continue
        widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": y,
                "width": 24,
                "height": 1,
                "properties": {"markdown": f"## {category.capitalize()} KPIs"},
            }
        )
        y += 1
        for index, kpi in enumerate(kpis):
            widgets.append(
                _dashboard_widget(kpi, region, x=(index % 3) * 8, y=y + (index // 3) * 6)
            )
        y += ((len(kpis) + 2) // 3) * 6
    return json.dumps({"widgets": widgets}, indent=2, sort_keys=True) + "\n"


def apply_cloudwatch_dashboard(client: Any, catalog: KpiCatalog, region: str) -> bool:
    """Put the dashboard when its body differs.

    Returns:
        Whether it changed.

    Raises:
        CloudWatchApplyError: reading or putting the dashboard failed.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from slipway.errors import CloudWatchApplyError

    body = render_cloudwatch_dashboard(catalog, region)
    try:
        try:
            current = client.get_dashboard(DashboardName=CLOUDWATCH_DASHBOARD_NAME)["DashboardBody"]
        except client.exceptions.ResourceNotFound:
            current = None
        if current is not None and json.loads(current) == json.loads(body):
            return False
        client.put_dashboard(DashboardName=CLOUDWATCH_DASHBOARD_NAME, DashboardBody=body)
    except (ClientError, BotoCoreError) as e:
        raise CloudWatchApplyError(
            f"could not put dashboard {CLOUDWATCH_DASHBOARD_NAME}: {e}"
        ) from e
    return True


def _dashboard_widget(kpi: Kpi, region: str, x: int, y: int) -> dict[str, Any]:
    cw = kpi.cloudwatch
    metrics: list[list[Any]]
    if cw.expression is None:
        dims = [item for key, value in sorted(cw.dimensions.items()) for item in (key, value)]
        stat = cw.statistic or cw.extended_statistic
        metrics = [[cw.namespace, cw.metric_name, *dims, {"stat": stat, "label": kpi.name}]]
    else:
        metrics = [[{"expression": cw.expression, "label": kpi.name, "id": "kpi"}]]
        for query_id, query in cw.metrics.items():
            dims = [
                item for key, value in sorted(query.dimensions.items()) for item in (key, value)
            ]
            metrics.append(
                [
                    cw.namespace,
                    query.metric_name,
                    *dims,
                    {"id": query_id, "stat": query.stat, "visible": False},
                ]
            )
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 8,
        "height": 6,
        "properties": {
            "title": f"{kpi.name} ({kpi.severity})",
            "region": region,
            "view": "timeSeries",
            "period": cw.period,
            "metrics": metrics,
            "annotations": {
                "horizontal": [{"label": f"threshold {kpi.comparison}", "value": kpi.threshold}]
            },
        },
    }
