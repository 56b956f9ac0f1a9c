"""Read Prometheus text exposition from ``/metrics`` targets (or Prometheus ``/federate``).

Parsing uses prometheus_client's text parser. Families that arrive ``untyped`` (Prometheus's
``/federate`` endpoint types nothing) are typed by the naming conventions PromQL users rely on:
``*_total`` is a counter, ``<base>_bucket{le}`` + ``<base>_count`` + ``<base>_sum`` form a
histogram, anything else is a gauge.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from slipway.errors import ConfigError, RemoteUnavailableError

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One sample: full sample name (``x_total``, ``x_bucket``), sorted labels, value."""

    name: str
    labels: Labels
    value: float


@dataclass(frozen=True)
class Family:
    """A metric family: ``counter``, ``gauge``, ``histogram`` or ``summary``."""

    name: str
    type: str
    samples: tuple[Sample, ...]


def fetch_text(url: str, timeout: float = 10.0) -> str:
    """GET a target's exposition text.

    Raises:
        ConfigError: the URL is not http(s).
        RemoteUnavailableError: the target did not answer 200 in time.
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"target {url!r} is not an http(s) URL; pass e.g. http://host:8080/metrics"
        )
    accept = {"Accept": "text/plain;version=0.0.4"}
    request = urllib.request.Request(url, headers=accept)  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked
            return response.read().decode("utf-8")
    except (OSError, ValueError) as e:
        raise RemoteUnavailableError(f"cannot scrape {url}: {e}; check --target") from e


def parse_families(text: str) -> list[Family]:
    """Parse exposition text into typed families (see the module docstring for untyped ones)."""
    typed: list[Family] = []
    untyped: list[Sample] = []
    for family in text_string_to_metric_families(text):
        samples = tuple(
            Sample(s.name, tuple(sorted(s.labels.items())), float(s.value)) for s in family.samples
        )
        if family.type in ("counter", "gauge", "histogram", "summary"):
            typed.append(Family(family.name, family.type, samples))
        else:
            untyped.extend(samples)
    return typed + _type_untyped(untyped)


def _type_untyped(samples: list[Sample]) -> list[Family]:
    histograms = {
        s.name.removesuffix("_bucket")
        for s in samples
        if s.name.endswith("_bucket") and any(k == "le" for k, _ in s.labels)
    }
    grouped: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        base = next(
            (
                s.name.removesuffix(suffix)
                for suffix in ("_bucket", "_count", "_sum")
                if s.name.endswith(suffix) and s.name.removesuffix(suffix) in histograms
            ),
            None,
        )
        if base is not None:
            key = (base, "histogram")
        elif s.name.endswith("_total"):
            key = (s.name.removesuffix("_total"), "counter")
        else:
            key = (s.name, "gauge")
        grouped.setdefault(key, []).append(s)
    return [Family(name, kind, tuple(ss)) for (name, kind), ss in grouped.items()]
