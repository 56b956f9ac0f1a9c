"""The mirror's own metrics and its HTTP endpoint (``/metrics``, ``/healthz``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class MirrorMetrics:
    """Health and lag of the mirror, in a registry of its own (injectable for tests).

    Args:
        registry: where the metrics live; a fresh one by default.
        started_at: Unix time the mirror started (default: now). ``last_tick_time`` holds it
            until the first tick, so a loop that hangs before ticking once goes unhealthy too.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, started_at: float | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.buffered_points = Gauge(
            "slipway_mirror_buffered_points", "Points waiting to be sent to CloudWatch.", registry=r
        )
        self.lag_seconds = Gauge(
            "slipway_mirror_lag_seconds",
            "Age of the oldest point not yet accepted by CloudWatch (0 when none waits).",
            registry=r,
        )
        self.put_calls = Counter(
            "slipway_mirror_put_calls", "PutMetricData calls by outcome.", ["outcome"], registry=r
        )
        self.dropped_points = Counter(
            "slipway_mirror_dropped_points",
            "Points that will never reach CloudWatch, by reason.",
            ["reason"],
            registry=r,
        )
        self.published_points = Counter(
            "slipway_mirror_published_points", "Points accepted by CloudWatch.", registry=r
        )
        self.last_success = Gauge(
            "slipway_mirror_last_success_timestamp_seconds",
            "Unix time of the last accepted PutMetricData call.",
            registry=r,
        )
        self.scrapes = Counter(
            "slipway_mirror_scrapes",
            "Scrapes by target and outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self.last_tick = Gauge(
            "slipway_mirror_last_tick_timestamp_seconds", "Unix time of the last loop.", registry=r
        )
        self.last_tick_time = time.time() if started_at is None else started_at
        # known label sets start at 0, so their first increase is visible
        for outcome in ("ok", "error", "rejected"):
            self.put_calls.labels(outcome=outcome)
        for reason in ("buffer_full", "rejected", "too_old"):
            self.dropped_points.labels(reason=reason)


def serve_health(
    metrics: MirrorMetrics,
    port: int,
    healthy: Callable[[], bool],
    host: str = "0.0.0.0",  # noqa: S104
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` (200 while the loop runs, else 503) in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, status, kind = generate_latest(metrics.registry), 200, CONTENT_TYPE_LATEST
            elif path == "/healthz":
                ok = healthy()
                body, status, kind = (
                    (b"ok\n" if ok else b"stalled\n"),
                    (200 if ok else 503),
                    "text/plain",
                )
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # probes every few seconds: no access log
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="mirror-health", daemon=True).start()
    return server


def loop_is_alive(metrics: MirrorMetrics, max_silence: float) -> Callable[[], bool]:
    """A health check: the loop ticked (before its first tick: started) in ``max_silence`` s."""

    def check() -> bool:
        return time.time() - metrics.last_tick_time < max_silence

    return check
