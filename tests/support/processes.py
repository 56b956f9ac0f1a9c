"""Start and stop the real processes the integration tests talk to."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers any HTTP status, or fail with the process's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)  # loopback test server
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def running(
    argv: Sequence[str], ready_url: str, log: Path, timeout: float = 60, env: dict | None = None
) -> Iterator[subprocess.Popen]:
    """Run ``argv`` in its own process group until the block ends; the log goes to ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        try:
            try:
                wait_http(ready_url, timeout, proc)
            except Exception as e:
                raise RuntimeError(f"{argv[0]} did not start: {log.read_text()[-2000:]}") from e
            yield proc
        finally:
            with_group_stop(proc)


def with_group_stop(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@contextmanager
def moto_server(log: Path, port: int | None = None) -> Iterator[str]:
    """A real ``moto_server`` on 127.0.0.1 (at ``port``, or a free one); yields its endpoint URL.

    Pass the port of a stopped server to restart it at the same endpoint (with empty state).
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        f"{url}/moto-api/",
        log,
    ):
        yield url
