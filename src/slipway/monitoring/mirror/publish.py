"""Buffered, batched ``PutMetricData`` with retries: every point is sent once or counted dropped.

Points wait in a bounded FIFO buffer. :meth:`Publisher.flush` sends them oldest first in calls of
at most 1,000 datums *and* at most ``max_batch_bytes`` of request body, and removes a batch from
the buffer only after CloudWatch accepted it, so a failure in the middle of a flush leaves
exactly the unsent points behind. Throttling, 5xx and connection errors are retried by botocore
(standard retry mode) and then by the publisher itself with exponential backoff on later
flushes, while new points keep arriving. A full buffer drops its *oldest* points; CloudWatch
rejecting a batch as invalid (HTTP 400) bisects it so that only the offending datums are dropped.
Both are counted in ``slipway_mirror_dropped_points_total{reason}``.

Limit: a call whose response is lost after CloudWatch stored it (read timeout) is sent again;
PutMetricData has no idempotency token, so such a batch can arrive twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from slipway.monitoring.kpis import CLOUDWATCH_NAMESPACE
from slipway.monitoring.mirror.health import MirrorMetrics

logger = logging.getLogger(__name__)

MAX_DATUMS_PER_CALL = 1000
#: 1 MB per call; a little headroom for the action/version/namespace fields.
MAX_CALL_BYTES = 1_000_000
#: CloudWatch refuses timestamps older than two weeks; keep an hour of margin.
MAX_AGE_SECONDS = 14 * 86400 - 3600
_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}


def mirror_client(
    region: str,
    endpoint_url: str | None = None,
    max_attempts: int = 3,
    connect_timeout: float = 3.0,
    read_timeout: float = 15.0,
) -> Any:
    """A CloudWatch client with botocore's standard retries (throttling, 5xx, connection)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url, config=config)


def datum_size(datum: dict[str, Any]) -> int:
    """Bytes the datum adds to a query-protocol request body (index written as 4 digits)."""
    size = 0
    for key, value in _flatten(datum, "MetricData.member.1000"):
        size += len(key) + len(quote(value, safe="")) + 2  # '=' and '&'
    return size


def _flatten(value: Any, prefix: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value, 1):
            yield from _flatten(item, f"{prefix}.member.{i}")
    elif isinstance(value, datetime):
        yield prefix, value.isoformat()
    else:
        yield prefix, str(value)


@dataclass
class _Point:
    datum: dict[str, Any]
    size: int
    timestamp: float


@dataclass(frozen=True)
class PublishLimits:
    """How much the publisher buffers, how big a call may be, and how it backs off.

    Attributes:
        max_buffered: data points kept while CloudWatch is unreachable; older ones are dropped.
        max_batch_bytes: request body limit of one ``PutMetricData`` call.
        backoff_base: seconds before the first retry; doubled after each failure.
        backoff_max: the longest wait between retries, in seconds.
    """

    max_buffered: int = 50_000
    max_batch_bytes: int = MAX_CALL_BYTES
    backoff_base: float = 1.0
    backoff_max: float = 60.0


class Publisher:
    """The buffer and the calls. Not thread-safe: one loop adds and flushes."""

    def __init__(
        self,
        client: Any,
        metrics: MirrorMetrics,
        namespace: str = CLOUDWATCH_NAMESPACE,
        limits: PublishLimits = PublishLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.namespace = namespace
        self.max_buffered = limits.max_buffered
        self.max_batch_bytes = limits.max_batch_bytes
        self.backoff_base = limits.backoff_base
        self.backoff_max = limits.backoff_max
        self.clock = clock
        self._buffer: deque[_Point] = deque()
        self._failures = 0
        self._next_attempt = 0.0
        self._base_size = len(f"Action=PutMetricData&Version=2010-08-01&Namespace={namespace}")

    @property
    def pending(self) -> int:
        """How many data points are buffered, not yet accepted by CloudWatch."""
        return len(self._buffer)

    def add(self, datums: Iterable[dict[str, Any]]) -> None:
        """Buffer datums; past ``max_buffered`` the oldest are dropped (and counted)."""
        for datum in datums:
            when = datum["Timestamp"].timestamp()
            self._buffer.append(_Point(datum, datum_size(datum), when))
        overflow = len(self._buffer) - self.max_buffered
        if overflow > 0:
            for _ in range(overflow):
                self._buffer.popleft()
            self._drop(overflow, "buffer_full")
        self._update_gauges()

    def flush(self, force: bool = False) -> int:
        """Send what is buffered, oldest first; returns how many datums left the buffer.

        Args:
            force: ignore the backoff delay after earlier failures.
        """
        now = self.clock()
        if not force and now < self._next_attempt:
            return 0
        sent = 0
        while self._buffer and now - self._buffer[0].timestamp > MAX_AGE_SECONDS:
            self._buffer.popleft()
            self._drop(1, "too_old")
        while self._buffer:
            batch = self._next_batch()
            delivered = self._deliver(batch)
            sent += delivered
            if delivered < len(batch):  # the rest is still at the head: retry later
                self._failures += 1
                delay = min(self.backoff_max, self.backoff_base * 2 ** (self._failures - 1))
                self._next_attempt = self.clock() + delay * random.uniform(0.5, 1.0)  # noqa: S311
                logger.warning(
                    "CloudWatch unreachable (%d failed flushes): %d points buffered, next try in "
                    "%.1f s",
                    self._failures,
                    len(self._buffer),
                    self._next_attempt - self.clock(),
                )
                break
        else:
            self._failures = 0
            self._next_attempt = 0.0
        self._update_gauges()
        return sent

    def _next_batch(self) -> list[_Point]:
        batch: list[_Point] = []
        size = self._base_size
        for point in self._buffer:
            if len(batch) == MAX_DATUMS_PER_CALL or (
                batch and size + point.size > self.max_batch_bytes
            ):
                break
            batch.append(point)
            size += point.size
        return batch

    def _deliver(self, batch: list[_Point]) -> int:
        """Send ``batch`` (the head of the buffer); returns how many datums left the buffer.

        Fewer than ``len(batch)`` with the rest still at the head means a retryable failure.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_metric_data(
                Namespace=self.namespace, MetricData=[p.datum for p in batch]
            )
        except ClientError as e:
            error = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status in (400, 413) and error.get("Code") not in _THROTTLING:
                self.metrics.put_calls.labels(outcome="rejected").inc()
                return self._bisect(batch, f"{error.get('Code')}: {error.get('Message')}")
            self.metrics.put_calls.labels(outcome="error").inc()
            logger.warning("PutMetricData failed (%s), will retry: %s", status, e)
            return 0
        except BotoCoreError as e:
            self.metrics.put_calls.labels(outcome="error").inc()
            logger.warning("PutMetricData failed, will retry: %s", e)
            return 0
        for _ in batch:
            self._buffer.popleft()
        self.metrics.put_calls.labels(outcome="ok").inc()
        self.metrics.published_points.inc(len(batch))
        self.metrics.last_success.set(self.clock())
        return len(batch)

    def _bisect(self, batch: list[_Point], reason: str) -> int:
        if len(batch) == 1:
            logger.error("CloudWatch rejected %s (%s); dropped", batch[0].datum, reason)
            self._buffer.popleft()
            self._drop(1, "rejected")
            return 1
        half = len(batch) // 2
        left = self._deliver(batch[:half])
        if left < half:
            return left
        return left + self._deliver(batch[half:])

    def _drop(self, count: int, reason: str) -> None:
        self.metrics.dropped_points.labels(reason=reason).inc(count)
        logger.warning("dropped %d points (%s)", count, reason)

    def _update_gauges(self) -> None:
        self.metrics.buffered_points.set(len(self._buffer))
        oldest = self._buffer[0].timestamp if self._buffer else None
        self.metrics.lag_seconds.set(0.0 if oldest is None else max(self.clock() - oldest, 0.0))
