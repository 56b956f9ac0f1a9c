"""``slipway guard``: roll a bad model version back by itself, Deployment and registry together.

A new pod-template revision of the model server starts a bake window; the guard checks the
rollback KPIs of the KPI catalog for the new version in Prometheus at an interval, rolls back
through the same library path as ``slipway rollback`` when one fails ``consecutive`` checks in
a row, and tags the registry version ``verified`` when the window passes. Its state lives in
the Deployment's annotations, so a restarted guard resumes the window.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AlarmEvent": "alarms",
        "AlarmQueue": "alarms",
        "AlarmQueueError": "alarms",
        "CheckReport": "runner",
        "Decision": "window",
        "DeploymentApi": "cluster",
        "Guard": "runner",
        "GuardMetrics": "metrics",
        "GuardOptions": "runner",
        "GuardPolicy": "policy",
        "KpiCheck": "policy",
        "Observation": "window",
        "PrometheusClient": "prometheus",
        "PrometheusQueryError": "prometheus",
        "WindowState": "window",
        "choose_target": "window",
        "close": "window",
        "evaluate": "window",
        "load_api_client": "cluster",
        "parse_alarm_notification": "alarms",
        "policy_from_catalog": "policy",
        "sqs_client": "alarms",
        "start_window": "window",
    },
)
