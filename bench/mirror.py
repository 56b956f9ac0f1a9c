"""Benchmark of `slipway mirror`: series per second and PutMetricData calls per scrape.

A prometheus_client exporter on 127.0.0.1 exposes SERIES gauge series and SERIES counter series
(each its own CloudWatch dimension value, the worst case for call counts); the mirror scrapes it
and publishes to a real moto_server. Results go to docs/benchmarks.md between the markers
``<!-- mirror:start -->`` and ``<!-- mirror:end -->``; the rest of the file is kept.

Run: uv run --no-sync python -m bench.mirror [--series 5000] [--ticks 3]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from bench.report import write_section
from slipway.monitoring.mirror import (
    Converter,
    DimensionRules,
    Mirror,
    MirrorMetrics,
    Publisher,
    mirror_client,
)
from slipway.monitoring.mirror.scrape import fetch_text, parse_families
from tests.support.processes import free_port, moto_server

REPO = Path(__file__).resolve().parents[1]


def run(series: int, ticks: int) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    registry = CollectorRegistry()
    gauge = Gauge("bench_gauge", "g", ["series"], registry=registry)
    counter = Counter("bench_requests", "c", ["series"], registry=registry)
    for i in range(series):
        gauge.labels(str(i)).set(i)
        counter.labels(str(i)).inc()
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{port}/metrics"
    rules = DimensionRules.from_mapping(
        {"bench_gauge": [["series"]], "bench_requests_total": [["series"]]}
    )
    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp) / "moto.log") as endpoint:
        metrics = MirrorMetrics(CollectorRegistry())
        client = mirror_client("us-east-1", endpoint)
        calls: list[int] = []
        client.meta.events.register(
            "before-call.cloudwatch.PutMetricData", lambda **_: calls.append(1)
        )
        mirror = Mirror([url], Converter(rules), Publisher(client, metrics), metrics)
        mirror.tick()  # baseline of the counters
        per_tick, convert_rates, points, call_counts = [], [], [], []
        for _ in range(ticks):
            for i in range(series):
                counter.labels(str(i)).inc()
            before = len(calls)
            started = time.perf_counter()
            added = mirror.tick()
            per_tick.append(time.perf_counter() - started)
            points.append(added)
            call_counts.append(len(calls) - before)
            # scrape + parse + convert alone, without the calls
            started = time.perf_counter()
            families = parse_families(fetch_text(url))
            Converter(rules).convert("bench", families, time.time())
            convert_rates.append(2 * series / (time.perf_counter() - started))
        assert mirror.publisher.pending == 0
    server.shutdown()
    return {
        "series": 2 * series,
        "ticks": ticks,
        "points_per_tick": points[-1],
        "calls_per_tick": call_counts,
        "expected_calls": math.ceil(points[-1] / 1000),
        "tick_seconds": statistics.median(per_tick),
        "end_to_end_series_per_s": 2 * series / statistics.median(per_tick),
        "convert_series_per_s": statistics.median(convert_rates),
    }


def render(result: dict[str, Any], command: str) -> str:
    calls = sorted(set(result["calls_per_tick"]))
    ok = calls == [result["expected_calls"]]
    return "\n".join(
        [
            "## slipway mirror",
            "",
            f"Command: `{command}` ({platform.node() or 'this machine'}, {os.cpu_count()} cores, "
            f"{time.strftime('%Y-%m-%d')}). {result['series']:,} series ({result['series'] // 2:,}"
            " gauges, as many counters), each its own dimension value; moto_server on 127.0.0.1"
            f" as CloudWatch; median of {result['ticks']} scrapes.",
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| points per scrape | {result['points_per_tick']:,} |",
            f"| PutMetricData calls per scrape | {', '.join(map(str, calls))} "
            f"(target ceil(points / 1000) = {result['expected_calls']}: "
            f"{'met' if ok else 'NOT met'}) |",
            f"| scrape + parse + convert | {result['convert_series_per_s']:,.0f} series/s |",
            f"| whole tick incl. calls to moto | {result['tick_seconds']:.2f} s "
            f"({result['end_to_end_series_per_s']:,.0f} series/s) |",
            "",
            f"Of a tick, {result['tick_seconds'] - result['series'] / result['convert_series_per_s']:.2f} s"
            " is spent in the PutMetricData calls to moto_server (a Python process); the"
            " scrape + parse + convert rate is the mirror's own cost.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--series", type=int, default=5000, help="gauge series (same again as counters)"
    )
    parser.add_argument("--ticks", type=int, default=3)
    args = parser.parse_args()
    result = run(args.series, args.ticks)
    command = "uv run --no-sync python -m bench.mirror"
    if (args.series, args.ticks) != (5000, 3):
        command += f" --series {args.series} --ticks {args.ticks}"
    section = render(result, command)
    print(section)
    print(write_section("mirror", section))


if __name__ == "__main__":
    main()
