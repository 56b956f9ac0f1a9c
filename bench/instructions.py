"""Instructions a request, counted by valgrind: slipway against the same-work floor, load-free.

wrk's requests/s and even CPU time a request move with whatever else the 2 cores run; the
number of machine instructions a request executes does not. Each server runs in-process under
``valgrind --tool=callgrind`` behind uvicorn's own httptools protocol (slipway with its
header-timeout protocol, the floor with uvicorn's), fed a one-row infer request on one
keep-alive connection through a transport that keeps what the server writes: the whole server
side of a request (HTTP parsing, the ASGI app, the answer's bytes, the event loop's turn)
except the socket system calls, which both pay alike. Counting is switched on
(``callgrind_control -i on``) only after a warm-up of :data:`WARM_UP` requests and off after
``--requests`` more, so imports and the model load are not counted.

Two slipway rows: with the default limits, PSI is recomputed every 100 requests at most once
a second, and the metrics are flushed every tenth of a second; under valgrind (~50x slower) a
second is ~200 requests and a tenth ~20, so that row is what a server at low traffic pays. At
10,000 requests a second the bounds hold PSI to one update per 10,000 requests and a flush to
one per 1,000: the second row (``psi_min_seconds`` and the flush timer beyond the run) counts
one flush, at the end of the counted requests (so a flush's cost is spread over
``--requests``, 2,000 by default).

    uv run python -m bench.instructions [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section
from bench.serving import MODEL, VERSION, compact_json, oip_body, prepare_slipway, train

WARM_UP = 300
PROJECT = Path(__file__).resolve().parents[1]


class _Transport(asyncio.Transport):
    """Keeps what the server writes; a complete answer wakes the waiting driver."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.status = 0
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        if len(self.buffer) >= end + 4 + length:
            self.status = int(self.buffer[9:12])
            self.buffer.clear()
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol

    def get_protocol(self) -> object:
        return self.protocol


def child(mode: str, efs: Path, requests: int, flags: Path) -> None:
    """Serve ``requests`` after the warm-up, with ``ready``/``go``/``done`` files around them."""
    import uvicorn
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    body = (efs / "body.json").read_bytes()
    raw = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    if mode == "floor":
        from bench.floors import same_work

        app, protocol_class, lifespan = same_work(), HttpToolsProtocol, None
    else:
        import slipway.serving.metrics
        from slipway.config import Settings
        from slipway.serving import ServingLimits, create_app
        from slipway.serving.connection import HeaderTimeoutProtocol

        limits = None
        if mode == "slipway-load":
            limits = ServingLimits(psi_min_seconds=1e9)
            slipway.serving.metrics.FLUSH_SECONDS = 1e9
        settings = Settings(model_name=MODEL, model_version=VERSION, efs_root=str(efs))
        app = create_app(settings, limits=limits, background_load=False)
        protocol_class, lifespan = HeaderTimeoutProtocol, app.router.lifespan_context(app)

    async def drive(n: int, loop, protocol, transport) -> None:
        for _ in range(n):
            transport.waiter = loop.create_future()
            protocol.data_received(raw)
            await transport.waiter
            if transport.status != 200:
                raise RuntimeError(f"{mode}: status {transport.status}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if lifespan is not None:
            await lifespan.__aenter__()
        config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="off")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        await drive(WARM_UP, loop, protocol, transport)
        if mode == "slipway-load":
            app.server.metrics.flush()  # the warm-up's flush, with the one PSI update
        (flags / "ready").touch()
        while not (flags / "go").exists():
            time.sleep(0.05)
        await drive(requests, loop, protocol, transport)
        if mode == "slipway-load":
            app.server.metrics.flush()  # the one flush of these requests (the docstring)
        (flags / "done").touch()
        while not (flags / "end").exists():
            time.sleep(0.05)

    uvloop.run(main())


def count(mode: str, efs: Path, requests: int, work: Path) -> dict[str, float]:
    """Instructions and simulated cache misses a request for ``mode``, from callgrind."""
    flags = work / f"flags-{mode}"
    flags.mkdir()
    out = work / f"callgrind-{mode}.out"
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--cache-sim=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        mode,
        str(efs),
        str(requests),
        str(flags),
    ]
    log = (work / f"{mode}.log").open("wb")
    onnx = efs / MODEL / VERSION / "model.onnx"
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "SLIPWAY_FLOOR_ONNX": str(onnx)}
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT, env=env)

    def wait_for(flag: str) -> None:
        while not (flags / flag).exists():
            if proc.poll() is not None:
                raise RuntimeError(f"{mode} exited: {(work / f'{mode}.log').read_text()[-1500:]}")
            time.sleep(0.5)

    def instrument(switch: str) -> None:
        subprocess.run(
            ["callgrind_control", "-i", switch, str(proc.pid)], check=True, capture_output=True
        )

    try:
        wait_for("ready")
        instrument("on")
        (flags / "go").touch()
        wait_for("done")
        instrument("off")
        (flags / "end").touch()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    events = text.split("events: ", 1)[1].split("\n", 1)[0].split()
    totals = [int(v) for v in text.split("\ntotals: ", 1)[1].split("\n", 1)[0].split()]
    return {event: value / requests for event, value in zip(events, totals, strict=True)}


ROWS = (
    ("floor", "floor: same work (orjson, numpy, ONNX Runtime)"),
    (
        "slipway",
        "slipway, default limits (PSI every 100 requests, a metrics flush every ~20: low traffic)",
    ),
    (
        "slipway-load",
        "slipway at 10,000 requests/s (PSI and the flush at their time bounds)",
    ),
)


def render(results: dict[str, dict[str, float]], requests: int) -> str:
    floor = results["floor"]["Ir"]
    lines = [
        "### Model server: instructions a request (valgrind)",
        "",
        f"`python -m bench.instructions --requests {requests}` (run by `make bench`): each server "
        "under `valgrind --tool=callgrind` behind uvicorn's httptools protocol, one-row infer "
        f"requests on one keep-alive connection, {requests:,} counted after a warm-up of "
        f"{WARM_UP}; socket system calls are not in it (both pay them alike). Instructions do "
        "not change with the load on the machine, unlike requests/s; the L1 misses are "
        "valgrind's simulated cache.",
        "",
        "| server | instructions a request | floor / this | L1 instruction misses | L1 data misses |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode, label in ROWS:
        r = results[mode]
        lines.append(
            f"| {label} | {r['Ir']:,.0f} | {floor / r['Ir']:.1%} | {r['I1mr']:,.0f} | "
            f"{r['D1mr'] + r['D1mw']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "EFS", "N", "FLAGS"))
    args = parser.parse_args()
    if args.child:
        mode, efs, n, flags = args.child
        child(mode, Path(efs), int(n), Path(flags))
        return
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: scripts/ensure-debian-tools.sh valgrind:valgrind")
    work = Path(tempfile.mkdtemp(prefix="slipway-bench-instructions-"))
    model, x = train()
    efs = prepare_slipway(work, model, x)
    (efs / "body.json").write_bytes(compact_json(oip_body(x, 1)))
    results = {}
    for mode, label in ROWS:
        results[mode] = count(mode, efs, args.requests, work)
        print(f"{label}: {results[mode]['Ir']:,.0f} instructions a request", flush=True)
    body = render(results, args.requests)
    print(body)
    print(f"written to {write_section('instructions', body)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
