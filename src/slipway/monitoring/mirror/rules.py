"""Which labels become CloudWatch dimensions: the allowlist read from the KPI catalog.

A CloudWatch metric is its name *and* its exact dimension set: an alarm on
``slipway_http_requests_total{route}`` sees nothing published with ``{route, method}``. So the
mirror publishes each allowlisted metric once per dimension set the catalog's alarms read
(:func:`slipway.monitoring.cwagent.metric_dimension_sets`), with the other labels aggregated away, and
ignores every metric no alarm reads.

The allowlist reaches the pod as a ConfigMap (:data:`ALLOWLIST_FILE`), rendered from the catalog
by :func:`render_allowlist_configmap`; the image does not carry ``monitoring/kpis.yaml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from slipway.errors import ConfigError
from slipway.monitoring.kpis import KpiCatalog

#: CloudWatch allows at most 30 dimensions per metric.
MAX_DIMENSIONS = 30
ALLOWLIST_FILE = "manifests/monitoring/mirror-allowlist.yaml"
ALLOWLIST_KEY = "allowlist.json"
ALLOWLIST_CONFIGMAP = "slipway-mirror-allowlist"
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class DimensionRules:
    """``{metric name: (dimension set, ...)}``; a metric absent from it is not published."""

    sets: Mapping[str, tuple[tuple[str, ...], ...]]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Iterable[Iterable[str]]]) -> DimensionRules:
        """Validate ``{metric: [[label, ...], ...]}``.

        Raises:
            ConfigError: a label is not a Prometheus label name, or a set has more than 30.
        """
        sets: dict[str, tuple[tuple[str, ...], ...]] = {}
        for name, dim_sets in data.items():
            checked = []
            for dims in dim_sets:
                dims = tuple(sorted(dims))
                if len(dims) > MAX_DIMENSIONS:
                    raise ConfigError(
                        f"metric {name!r} has a dimension set of {len(dims)} labels; CloudWatch "
                        f"allows {MAX_DIMENSIONS}: drop labels from the KPI's dimensions"
                    )
                bad = [d for d in dims if not _LABEL.match(d)]
                if bad or len(set(dims)) != len(dims):
                    raise ConfigError(
                        f"metric {name!r}: dimension set {list(dims)} has invalid or repeated "
                        "label names; use Prometheus label names, each once"
                    )
                checked.append(dims)
            sets[name] = tuple(sorted(set(checked)))
        return cls(sets)

    @classmethod
    def from_catalog(cls, catalog: KpiCatalog) -> DimensionRules:
        """Exactly the metrics and dimension sets the catalog's alarms read."""
        from slipway.monitoring.cwagent import metric_dimension_sets

        return cls.from_mapping(metric_dimension_sets(catalog))

    @classmethod
    def from_file(cls, path: Path | str) -> DimensionRules:
        """Read a JSON allowlist (the ConfigMap's ``allowlist.json``) or a KPI catalog YAML.

        Raises:
            ConfigError: the file is missing or malformed.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"allowlist {path} cannot be read ({e}); fix --allowlist") from e
        if path.suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"allowlist {path} is not JSON: {e}") from e
            if not isinstance(data, dict):
                raise ConfigError(f"allowlist {path} must map metric names to dimension sets")
            return cls.from_mapping(data)
        from slipway.monitoring.kpis import load_kpi_catalog

        return cls.from_catalog(load_kpi_catalog(path))

    def dimension_sets(self, name: str) -> tuple[tuple[str, ...], ...]:
        """The dimension sets of ``name``; empty when it is not allowlisted."""
        return self.sets.get(name, ())

    def __contains__(self, name: object) -> bool:
        return name in self.sets


def render_allowlist_configmap(catalog: KpiCatalog) -> str:
    """The ConfigMap that carries the allowlist to the mirror pod (a generated file)."""
    from slipway.monitoring.cwagent import metric_dimension_sets

    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ALLOWLIST_CONFIGMAP,
            "labels": {"app.kubernetes.io/managed-by": "slipway-alarms-generate"},
        },
        "data": {ALLOWLIST_KEY: json.dumps(metric_dimension_sets(catalog), indent=2) + "\n"},
    }
    from slipway.monitoring.alerts import GENERATED_HEADER, dump_yaml

    return GENERATED_HEADER + dump_yaml(configmap)
