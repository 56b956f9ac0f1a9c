"""The mirror loop: scrape every target, convert, buffer, flush; repeat every interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from slipway.errors import RemoteUnavailableError
from slipway.monitoring.mirror.convert import Converter
from slipway.monitoring.mirror.health import MirrorMetrics
from slipway.monitoring.mirror.publish import Publisher
from slipway.monitoring.mirror.scrape import fetch_text, parse_families

logger = logging.getLogger(__name__)


class Mirror:
    """One scrape-convert-publish cycle per :meth:`tick`; :meth:`run` repeats it."""

    def __init__(
        self,
        targets: Sequence[str],
        converter: Converter,
        publisher: Publisher,
        metrics: MirrorMetrics,
        scrape_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.targets = list(targets)
        self.converter = converter
        self.publisher = publisher
        self.metrics = metrics
        self.scrape_timeout = scrape_timeout
        self.clock = clock
        for target in self.targets:
            for outcome in ("ok", "error"):
                metrics.scrapes.labels(target=target, outcome=outcome)

    def tick(self) -> int:
        """Scrape every target once and flush; returns the number of datums buffered."""
        added = 0
        for target in self.targets:
            try:
                text = fetch_text(target, self.scrape_timeout)
                families = parse_families(text)
            except (RemoteUnavailableError, ValueError) as e:
                # the target's counters keep their baseline: the increase over the gap is
                # published on the next successful scrape
                self.metrics.scrapes.labels(target=target, outcome="error").inc()
                logger.warning("scrape of %s failed: %s", target, e)
                continue
            datums = self.converter.convert(target, families, self.clock())
            self.metrics.scrapes.labels(target=target, outcome="ok").inc()
            self.publisher.add(datums)
            added += len(datums)
        self.publisher.flush()
        now = self.clock()
        self.metrics.last_tick.set(now)
        self.metrics.last_tick_time = now
        return added

    def run(self, interval: float, stop: threading.Event | None = None, once: bool = False) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set, then try one last flush.

        Args:
            interval: seconds between the starts of two ticks.
            stop: set it (e.g. from a SIGTERM handler) to end the loop.
            once: one tick, then the final flush, then return.
        """
        stop = stop or threading.Event()
        while True:
            started = time.monotonic()
            self.tick()
            if once or stop.wait(max(interval - (time.monotonic() - started), 0.0)):
                break
        if self.publisher.pending:
            self.publisher.flush(force=True)
        if self.publisher.pending:
            logger.error("%d points were not delivered before exit", self.publisher.pending)
