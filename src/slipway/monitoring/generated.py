"""Every file generated from the KPI catalog, rendered and written in one place.

``slipway alarms generate`` calls :func:`write_generated`; a test renders the same files with
:func:`render_generated` and fails when a committed one differs (regenerate and commit).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml

from slipway.errors import KpiCatalogError
from slipway.monitoring import alerts, cwagent, dashboards
from slipway.monitoring.cloudwatch import alarm_specs
from slipway.monitoring.kpis import KpiCatalog
from slipway.monitoring.mirror import rules as mirror_rules

CLOUDWATCH_DASHBOARD_FILE = "monitoring/cloudwatch/dashboard.json"
CLOUDWATCH_ALARMS_FILE = "monitoring/cloudwatch/alarms.json"
#: The guard's part of the catalog, mounted by manifests/monitoring/guard-deployment.yaml.
GUARD_CATALOG_FILE = "manifests/monitoring/guard-catalog.yaml"
#: Region written into the committed CloudWatch dashboard; `slipway alarms apply` renders the
#: dashboard again for the region it applies to.
DEFAULT_REGION = "us-east-1"


def render_generated(
    catalog: KpiCatalog, root: Path, region: str = DEFAULT_REGION
) -> dict[Path, str]:
    """The content of every generated file, keyed by its path under ``root``.

    Args:
        catalog: the KPI catalog.
        root: the project checkout (the promtool cases file is read from it).
        region: AWS region written into the CloudWatch dashboard widgets.

    Raises:
        KpiCatalogError: the promtool cases file is missing or does not cover every KPI.
    """
    root = Path(root)
    cases_path = root / alerts.RULE_CASES_FILE
    try:
        cases = yaml.safe_load(cases_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as e:
        raise KpiCatalogError(
            f"{cases_path} does not exist: write the promtool input series of every KPI there"
        ) from e
    specs = alarm_specs(catalog, actions=[])
    files = {
        alerts.RULES_FILE: alerts.render_rules_file(catalog),
        alerts.RULE_TESTS_FILE: alerts.render_rule_tests(catalog, cases),
        alerts.PROMETHEUS_RULE_FILE: alerts.render_prometheus_rule(catalog),
        dashboards.GRAFANA_FILE: dashboards.render_grafana_dashboard(catalog),
        cwagent.AGENT_FILE: cwagent.render_agent_configmaps(catalog),
        CLOUDWATCH_DASHBOARD_FILE: dashboards.render_cloudwatch_dashboard(catalog, region),
        CLOUDWATCH_ALARMS_FILE: json.dumps(specs, indent=2) + "\n",
        mirror_rules.ALLOWLIST_FILE: mirror_rules.render_allowlist_configmap(catalog),
        GUARD_CATALOG_FILE: render_guard_catalog_configmap(catalog),
    }
    return {root / relative: content for relative, content in files.items()}


def render_guard_catalog_configmap(catalog: KpiCatalog) -> str:
    """The ConfigMap ``slipway-guard-catalog``: the guard block and the rollback KPIs."""
    from slipway.monitoring.kpis import guard_catalog

    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "slipway-guard-catalog",
            "labels": {"app.kubernetes.io/managed-by": "slipway-alarms-generate"},
        },
        "data": {"kpis.yaml": yaml.safe_dump(guard_catalog(catalog), sort_keys=False, width=200)},
    }
    return alerts.GENERATED_HEADER + alerts.dump_yaml(configmap)


def write_generated(catalog: KpiCatalog, root: Path, region: str = DEFAULT_REGION) -> list[Path]:
    """Write every generated file under ``root`` (temporary name, then rename).

    Everything is rendered before anything is written, so a catalog or cases error leaves the
    tree untouched.

    Returns:
        The paths written, in a stable order.
    """
    rendered = render_generated(catalog, root, region)
    for path, content in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return list(rendered)
