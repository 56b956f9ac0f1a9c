"""Instant queries against Prometheus' HTTP API (``GET /api/v1/query``), with clear errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from slipway.errors import SlipwayError

__all__ = ["PrometheusClient", "PrometheusQueryError", "Sample"]


class PrometheusQueryError(SlipwayError, RuntimeError):
    """Prometheus did not answer a query; the message names the URL, the query and the fix."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and value (NaN stays NaN)."""

    labels: dict[str, str]
    value: float


class PrometheusClient:
    """A small client of Prometheus' query API.

    Args:
        base_url: Prometheus' URL, e.g. ``http://prometheus-operated.monitoring.svc:9090``.
        timeout_s: Seconds of one query (also sent as the query's ``timeout``).
        http: An ``httpx.Client`` to use (tests); one is made otherwise.
    """

    def __init__(
        self, base_url: str, *, timeout_s: float = 10.0, http: httpx.Client | None = None
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise PrometheusQueryError(
                f"Prometheus URL {base_url!r} is not http(s)://host:port: pass --prometheus-url "
                "like http://prometheus-operated.monitoring.svc:9090"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = http or httpx.Client(timeout=timeout_s)

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Evaluate ``expr`` now (or at ``at``, seconds since the epoch).

        Returns:
            The series of the instant vector; a scalar is one sample without labels.

        Raises:
            PrometheusQueryError: unreachable, non-2xx, not JSON, ``status: error``, or not a
                vector/scalar.
        """
        params: dict[str, Any] = {"query": expr, "timeout": f"{self.timeout_s:g}s"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.base_url}/api/v1/query"
        short = " ".join(expr.split())[:200]
        try:
            response = self.http.get(url, params=params, timeout=self.timeout_s + 2)
        except httpx.HTTPError as e:
            raise PrometheusQueryError(
                f"Prometheus at {self.base_url} is unreachable ({type(e).__name__}: {e}): check "
                "--prometheus-url and that the guard may reach it (NetworkPolicy)"
            ) from e
        try:
            body = response.json()
        except ValueError as e:
            raise PrometheusQueryError(
                f"Prometheus at {self.base_url} answered HTTP {response.status_code} without "
                f"JSON to {url}: is --prometheus-url Prometheus itself (not Grafana or a proxy)?"
            ) from e
        if body.get("status") != "success":
            raise PrometheusQueryError(
                f"Prometheus rejected the query {short!r} (HTTP {response.status_code}, "
                f"{body.get('errorType')}: {body.get('error')}): fix the guard expr in "
                "monitoring/kpis.yaml"
            )
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return [Sample({}, _number(result[1]))]
        if kind != "vector":
            raise PrometheusQueryError(
                f"the query {short!r} returned a {kind}, not an instant vector: write it so that "
                "it returns one series per version"
            )
        return [
            Sample(dict(item.get("metric") or {}), _number(item["value"][1])) for item in result
        ]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
