"""``slipway mirror``: Prometheus metrics to CloudWatch (namespace ``Slipway``) for the KPI alarms.

Modules, one job each: :mod:`.rules` (the dimension allowlist from the KPI catalog),
:mod:`.scrape` (fetch and parse exposition text), :mod:`.convert` (gauges, counter increases,
histogram distributions), :mod:`.publish` (buffer, batches, retries), :mod:`.health` (the
mirror's own metrics and probes), :mod:`.loop` (the cycle). Design: docs/monitoring.md.
"""

from slipway.monitoring.mirror.convert import Converter
from slipway.monitoring.mirror.health import MirrorMetrics, serve_health
from slipway.monitoring.mirror.loop import Mirror
from slipway.monitoring.mirror.publish import Publisher, PublishLimits, datum_size, mirror_client
from slipway.monitoring.mirror.rules import DimensionRules, render_allowlist_configmap
from slipway.monitoring.mirror.scrape import Family, Sample, fetch_text, parse_families

__all__ = [
    "Converter",
    "DimensionRules",
    "Family",
    "Mirror",
    "MirrorMetrics",
    "PublishLimits",
    "Publisher",
    "Sample",
    "datum_size",
    "fetch_text",
    "mirror_client",
    "parse_families",
    "render_allowlist_configmap",
    "serve_health",
]
