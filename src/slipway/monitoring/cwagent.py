"""The CloudWatch agent's Prometheus configuration, generated from the KPI catalog.

The agent scrapes the model server, kube-state-metrics and the Pushgateway, and publishes to
the ``Slipway`` namespace exactly the metrics and dimension sets the alarms read (its
``emf_processor.metric_declaration``), nothing else: CloudWatch bills per metric and dimension
set. The file holds the two ConfigMaps the agent's EKS deployment mounts, as in AWS's
``prometheus-eks.yaml``: ``prometheus-config`` (scrape jobs) and ``prometheus-cwagentconfig``.

The agent drops histogram samples, so the metrics derived from the server's histograms (latency
percentiles, prediction-score buckets) are not declared here: ``slipway mirror`` publishes them
(see docs/metrics.md). Nor are the catalog's recorded series (machine KPIs: per-pod ratios and
the per-step join on ``kube_pod_labels``): they exist in Prometheus only, and the mirror
federates them. :func:`metric_dimension_sets` is the one allowlist both use.

A third ConfigMap, ``cwagentconfig``, turns on Container Insights (the agent DaemonSet's
``logs.metrics_collected.kubernetes``): the per-pod CPU, memory and restart metrics of every
pod, serving and training alike, in the ``ContainerInsights`` namespace, which the CloudWatch
dashboard shows beside the mirrored machine KPIs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slipway.monitoring.alerts import GENERATED_HEADER, dump_yaml
from slipway.monitoring.kpis import CLOUDWATCH_NAMESPACE, HISTOGRAM_METRICS, KpiCatalog

AGENT_NAMESPACE = "amazon-cloudwatch"
CONTAINER_INSIGHTS_NAMESPACE = "ContainerInsights"
#: ConfigMap of the Container Insights DaemonSet (the name AWS's quick start mounts).
CONTAINER_INSIGHTS_CONFIGMAP = "cwagentconfig"
AGENT_FILE = "monitoring/cloudwatch-agent/prometheus.yaml"
PROMETHEUS_CONFIG_PATH = "/etc/prometheusconfig/prometheus.yaml"

#: Scrape job of each metric family, by name prefix (first match wins).
SOURCE_JOBS = (
    ("slipway_pipeline_", "slipway-pipeline"),
    ("kube_", "kube-state-metrics"),
    ("slipway_", "slipway-server"),
)


def metric_dimension_sets(catalog: KpiCatalog) -> dict[str, list[list[str]]]:
    """Every CloudWatch metric the catalog reads, with the dimension sets it needs.

    Returns:
        ``{metric_name: [[dimension, ...], ...]}``, sorted, for publishers to allowlist.
    """
    sets: dict[str, set[tuple[str, ...]]] = {}
    for kpi in catalog.kpis:
        cw = kpi.cloudwatch
        pairs = (
            [(cw.metric_name, cw.dimensions)]
            if cw.metric_name is not None
            else [(q.metric_name, q.dimensions) for q in cw.metrics.values()]
        )
        for name, dims in pairs:
            sets.setdefault(name, set()).add(tuple(sorted(dims)))
    return {name: [list(dims) for dims in sorted(sets[name])] for name in sorted(sets)}


def agent_metric_names(catalog: KpiCatalog) -> list[str]:
    """The catalog's CloudWatch metrics the agent can publish: not histograms, not recorded."""
    recorded = catalog.recorded_metrics()
    return [
        name
        for name in metric_dimension_sets(catalog)
        if not is_histogram_metric(name) and name not in recorded
    ]


def is_histogram_metric(name: str) -> bool:
    """Whether a CloudWatch metric comes from a server histogram (published by the mirror)."""
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    return name in HISTOGRAM_METRICS or base in HISTOGRAM_METRICS


def source_job(name: str) -> str:
    """The Prometheus scrape job whose targets export metric ``name``, by its prefix.

    Raises:
        ValueError: no prefix in :data:`SOURCE_JOBS` matches ``name``.
    """
    for prefix, job in SOURCE_JOBS:
        if name.startswith(prefix):
            return job
    raise ValueError(f"metric {name!r} has no scrape job; add its prefix to SOURCE_JOBS")


def metric_declarations(catalog: KpiCatalog) -> list[dict[str, Any]]:
    """``emf_processor.metric_declaration``: one entry per (job, dimension sets) group."""
    groups: dict[tuple[str, str], list[str]] = {}
    wanted = set(agent_metric_names(catalog))
    for name, dim_sets in metric_dimension_sets(catalog).items():
        if name not in wanted:
            continue
        key = (source_job(name), json.dumps(dim_sets))
        groups.setdefault(key, []).append(name)
    return [
        {
            "source_labels": ["job"],
            "label_matcher": f"^{_escape(job)}$",
            "dimensions": json.loads(dim_sets),
            "metric_selectors": [f"^{_escape(name)}$" for name in sorted(names)],
        }
        for (job, dim_sets), names in sorted(groups.items())
    ]


def agent_config(catalog: KpiCatalog, namespace: str = CLOUDWATCH_NAMESPACE) -> dict[str, Any]:
    """The agent's JSON configuration (``cwagentconfig.json``)."""
    return {
        "logs": {
            "metrics_collected": {
                "prometheus": {
                    "prometheus_config_path": PROMETHEUS_CONFIG_PATH,
                    "emf_processor": {
                        "metric_declaration_dedup": True,
                        "metric_namespace": namespace,
                        "metric_declaration": metric_declarations(catalog),
                    },
                }
            },
            "force_flush_interval": 5,
        }
    }


def scrape_config(catalog: KpiCatalog) -> dict[str, Any]:
    """The Prometheus scrape configuration the agent reads; it keeps only the catalog's metrics."""
    by_job: dict[str, list[str]] = {}
    for name in agent_metric_names(catalog):
        by_job.setdefault(source_job(name), []).append(name)

    def keep(job: str) -> list[dict[str, Any]]:
        names = "|".join(_escape(name) for name in sorted(by_job.get(job, [])))
        return [{"source_labels": ["__name__"], "action": "keep", "regex": names}]

    return {
        "global": {"scrape_interval": "1m", "scrape_timeout": "10s"},
        "scrape_configs": [
            {
                "job_name": "slipway-server",
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": ["slipway"]}}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                        "action": "keep",
                        "regex": "slipway-server",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "action": "keep",
                        "regex": "http",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_name"],
                        "target_label": "pod",
                    },
                ],
                "metric_relabel_configs": keep("slipway-server"),
            },
            {
                "job_name": "kube-state-metrics",
                "kubernetes_sd_configs": [{"role": "endpoints"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_service_name"],
                        "action": "keep",
                        "regex": "kube-state-metrics",
                    }
                ],
                "metric_relabel_configs": keep("kube-state-metrics"),
            },
            {
                "job_name": "slipway-pipeline",
                "honor_labels": True,
                "kubernetes_sd_configs": [{"role": "endpoints"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_service_name"],
                        "action": "keep",
                        "regex": "prometheus-pushgateway",
                    }
                ],
                "metric_relabel_configs": keep("slipway-pipeline"),
            },
        ],
    }


def container_insights_config() -> dict[str, Any]:
    """The Container Insights agent's JSON configuration (DaemonSet ``cwagentconfig.json``).

    No ``cluster_name``: the agent reads it from the node's EKS tags. Enhanced observability
    adds the container-level metrics (``container_cpu_utilization_over_container_limit``,
    ``pod_container_status_terminated_reason_oom_killed``) and the ``FullPodName`` dimension.
    """
    return {
        "logs": {
            "metrics_collected": {
                "kubernetes": {
                    "enhanced_container_insights": True,
                    "metrics_collection_interval": 60,
                }
            },
            "force_flush_interval": 5,
        },
    }


def render_agent_configmaps(catalog: KpiCatalog) -> str:
    """The agent's ConfigMaps (Prometheus scrape, its EMF declarations, Container Insights)."""
    labels = {"app.kubernetes.io/part-of": "slipway", "app.kubernetes.io/managed-by": "slipway"}
    scrape = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "prometheus-config", "namespace": AGENT_NAMESPACE, "labels": labels},
        "data": {"prometheus.yaml": dump_yaml(scrape_config(catalog))},
    }
    agent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "prometheus-cwagentconfig",
            "namespace": AGENT_NAMESPACE,
            "labels": labels,
        },
        "data": {"cwagentconfig.json": json.dumps(agent_config(catalog), indent=2) + "\n"},
    }
    insights = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONTAINER_INSIGHTS_CONFIGMAP,
            "namespace": AGENT_NAMESPACE,
            "labels": labels,
        },
        "data": {"cwagentconfig.json": json.dumps(container_insights_config(), indent=2) + "\n"},
    }
    documents = (scrape, agent, insights)
    return GENERATED_HEADER + "---\n".join(dump_yaml(document) for document in documents)


def _escape(text: str) -> str:
    """``re.escape`` without escaping ``-``, which needs none outside a character class."""
    return re.escape(text).replace("\\-", "-")
