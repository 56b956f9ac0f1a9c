"""Profile slipway's infer path in one process: the ASGI app called with a synthetic request.

No HTTP and no load generator: ``create_app`` on a package built as ``bench.serving`` builds it,
its lifespan run by hand, then ``--requests`` infer calls through the whole ASGI stack
(middleware, routing, error mapping, the route) on uvloop, with the same-work floor app of
:mod:`bench.floors` timed the same way. Prints microseconds per request for both and, with
``--profile``, the top of a cProfile of slipway's loop.

    uv run python -m bench.profile_serving [--requests 20000] [--rows 1] [--binary] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

import uvloop

from bench.serving import (
    MODEL,
    VERSION,
    binary_body,
    compact_json,
    oip_body,
    prepare_slipway,
    train,
)


def scope_for(path: str, headers: dict[str, str] | None = None) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            *[
                (k.lower().encode(), v.encode())
                for k, v in (headers or {"content-type": "application/json"}).items()
            ],
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }


async def drive(app, body: bytes, n: int, headers: dict[str, str] | None = None) -> float:
    """Seconds per request over ``n`` calls of ``app``; checks every answer is a 200."""
    path = f"/v2/models/{MODEL}/infer"
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses = []

    async def receive() -> dict:
        return message

    async def send(m: dict) -> None:
        if m["type"] == "http.response.start":
            statuses.append(m["status"])

    started = time.thread_time()
    for _ in range(n):
        await app(
            scope_for(path, headers),
            receive,
            send,
        )
    elapsed = time.thread_time() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"statuses {sorted(set(statuses))}")
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--binary", action="store_true", help="binary tensor data requests")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="slipway-profile-serving-"))
    model, x = train()
    efs = prepare_slipway(work, model, x)
    os.environ["SLIPWAY_FLOOR_ONNX"] = str(efs / MODEL / VERSION / "model.onnx")
    if args.binary:
        body, headers = binary_body(x, args.rows)
    else:
        body, headers = compact_json(oip_body(x, args.rows)), None

    from bench.floors import same_work
    from slipway.config import Settings
    from slipway.serving import create_app

    settings = Settings(model_name=MODEL, model_version=VERSION, efs_root=str(efs))
    app = create_app(settings, background_load=False)
    floor = same_work()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await drive(app, body, 500, headers)  # warm-up
            await drive(floor, body, 500, headers)
            ours = await drive(app, body, args.requests, headers)
            theirs = await drive(floor, body, args.requests, headers)
            print(
                f"{args.rows} row(s){' binary' if args.binary else ''}: slipway {ours * 1e6:.1f} µs, same-work floor "
                f"{theirs * 1e6:.1f} µs a request in process ({theirs / ours:.0%})"
            )
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await drive(app, body, args.requests, headers)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(35)

    uvloop.run(run()) if hasattr(uvloop, "run") else asyncio.run(run())


if __name__ == "__main__":
    main()
