"""Monitoring generated from one KPI catalog, ``monitoring/kpis.yaml``.

Prometheus alert rules, CloudWatch alarms and dashboards, the CloudWatch agent configuration,
and the Prometheus-to-CloudWatch mirror (``mirror/``) all derive from that catalog.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GuardCheck": "kpis",
        "GuardDefaults": "kpis",
        "KpiCatalog": "kpis",
        "apply_alarms": "cloudwatch",
        "apply_cloudwatch_dashboard": "dashboards",
        "check_runbook_anchors": "kpis",
        "cloudwatch_client": "cloudwatch",
        "diff_alarms": "cloudwatch",
        "duration_seconds": "kpis",
        "guard_alarm_filter_policy": "cloudwatch",
        "load_kpi_catalog": "kpis",
        "write_generated": "generated",
    },
)
