"""The real server process: 2 uvicorn workers, multiprocess metrics, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from slipway.serving.server import GRACEFUL_SHUTDOWN_SECONDS
from tests.support.processes import free_port, running
from tests.support.serving import VERSION, infer_body, install_package, package_files

pytestmark = pytest.mark.integration

# `python -m slipway serve` once the verb is wired into slipway.cli; the module runs the same code
SERVE = [sys.executable, "-m", "slipway", "serve"]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_all_workers_ready(base: str, timeout: float = 90) -> None:
    """Readiness answers from one worker; the metrics say when *every* worker is (livemin)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=2) as response:
                if 'slipway_model_ready{model="slipway"} 1.0' in response.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} not ready within {timeout} s")


def scrape_until(base: str, lines: list[str], timeout: float = 5.0) -> str:
    """/metrics once it holds every one of ``lines`` (or the last scrape after ``timeout``).

    The request counters are written after the response is sent, so a scrape right after the
    last answer can miss the last few requests."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
        if all(line in text for line in lines) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def per_worker_predictions(metrics_dir: Path, tmp_path: Path) -> dict[str, float]:
    """Malignant predictions counted by each worker's own files."""
    import tempfile

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    scratch = Path(tempfile.mkdtemp(dir=tmp_path))
    for counter in metrics_dir.glob("counter_*.db"):
        pid = counter.stem.removeprefix("counter_")
        alone = scratch / f"pid-{pid}"
        alone.mkdir()
        shutil.copy(counter, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        labels = {"model": "slipway", "version": VERSION, "class": "1"}
        counts[pid] = registry.get_sample_value("slipway_predictions_total", labels) or 0.0
    return counts


def test_two_workers_share_metrics_and_drain_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    efs = tmp_path / "efs"
    install_package(efs, package_files())
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999.db").write_bytes(b"stale")  # a previous run's file: removed
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SLIPWAY_STATE_DIR": str(tmp_path / "state"),
        "SLIPWAY_EFS_ROOT": str(efs),
        "MODEL_VERSION": VERSION,  # the alias the Deployment also sets
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    monkeypatch.delenv("SLIPWAY_MODEL_VERSION", raising=False)  # MODEL_VERSION alone must do
    argv = [*SERVE, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    argv += ["--max-body-bytes", "4096"]  # must reach both workers; an infer body is ~1.3 KB
    with running(argv, f"{base}/v2/health/live", tmp_path / "server.log", env=env) as proc:
        wait_all_workers_ready(base)
        with urllib.request.urlopen(f"{base}/v2/health/live", timeout=10) as response:
            assert response.headers["server"] is None  # the server does not name its software
            assert response.headers["date"]  # HTTP/1.1 origin servers send one
        # the kernel spreads connections over the workers unevenly; send batches until both
        # have served (bounded), then the totals must add up across the worker files
        requests = 0
        for _ in range(10):
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(
                        lambda _: post(f"{base}/v2/models/slipway/infer", infer_body(2)),
                        range(60),
                    )
                )
            requests += 60
            assert all(a["outputs"][0]["data"] == [1, 1] for a in answers)
            assert {a["model_version"] for a in answers} == {VERSION}
            workers = per_worker_predictions(metrics_dir, tmp_path)
            if len([c for c in workers.values() if c > 0]) == 2:
                break

        expected = f'slipway_predictions_total{{class="1",model="slipway",version="{VERSION}"}} {2.0 * requests}'
        infer_ok = 'slipway_http_requests_total{method="POST",route="/v2/models/{name}/infer",status_class="2xx"}'
        text = scrape_until(base, [expected, f"{infer_ok} {float(requests)}"])
        assert expected in text
        assert f"{infer_ok} {float(requests)}" in text
        assert 'slipway_model_ready{model="slipway"} 1.0' in text
        workers = per_worker_predictions(metrics_dir, tmp_path)
        assert "99999" not in workers
        assert sum(workers.values()) == 2.0 * requests
        assert len([c for c in workers.values() if c > 0]) == 2, workers  # both workers served

        # --max-body-bytes reaches the workers (through the environment the CLI sets)
        for _ in range(4):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(
                    urllib.request.Request(
                        f"{base}/v2/models/slipway/infer",
                        data=b"{" + b" " * 5000 + b"}",
                        headers={"content-type": "application/json"},
                    ),
                    timeout=10,
                )
            assert refused.value.code == 413
            assert json.loads(refused.value.read()) == {
                "error": "request bodies are limited to 4096 bytes"
            }

        # an in-flight request: headers and half the body sent, then SIGTERM, then the rest
        body = json.dumps(infer_body(1)).encode()
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(
            b"POST /v2/models/slipway/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:40]
        )
        time.sleep(0.5)
        stopped = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # what the kubelet sends to PID 1
        time.sleep(1.0)
        conn.sendall(body[40:])
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
        conn.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert b'"model_version":"' + VERSION.encode() in reply
        assert proc.wait(timeout=GRACEFUL_SHUTDOWN_SECONDS + 5) == 0
        assert time.monotonic() - stopped < GRACEFUL_SHUTDOWN_SECONDS + 5
