"""The Grafana dashboard generated from the KPI catalog: one panel per KPI, by category.

Each panel plots the KPI's PromQL value (the same expression the alert compares) with its
threshold drawn as a red line, and links to the KPI's runbook.
"""

from __future__ import annotations

import json
from typing import Any

from slipway.kpis import Kpi, KpiCatalog

DASHBOARD_FILE = "monitoring/grafana/slipway.json"
_UNITS = {"seconds": "s", "ratio": "percentunit", "number": "short"}


def render_grafana_dashboard(catalog: KpiCatalog) -> str:
    """The dashboard JSON model (import it, or provision it from a ConfigMap)."""
    panels: list[dict[str, Any]] = []
    y = 0
    panel_id = 1
    for category in ("service", "model", "pipeline"):
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
