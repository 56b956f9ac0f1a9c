"""Debian's headless Chromium, to render the run report the way a person opens it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

#: The browser window the report is rendered in (width, height in CSS pixels).
WINDOW = (1200, 2000)
CHROMIUM_HINT = (
    "run `make install` (it installs Debian's chromium), or "
    "`scripts/ensure-debian-tools.sh chromium:chromium`"
)


class ChromiumUnavailable(RuntimeError):
    """No ``chromium`` on the ``PATH``."""


def chromium_binary() -> Path:
    """``chromium`` from the ``PATH``.

    Raises:
        ChromiumUnavailable: it is not installed; the message names the fix.
    """
    if found := shutil.which("chromium"):
        return Path(found)
    raise ChromiumUnavailable(f"chromium not found on the PATH: {CHROMIUM_HINT}")


def chromium_or_fail() -> Path:
    """:func:`chromium_binary`, or fail the test (never skip) with the missing binary and the fix."""
    import pytest

    try:
        return chromium_binary()
    except ChromiumUnavailable as e:
        pytest.fail(str(e))


def _headless(page: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # a fresh profile each time: no first-run state, no lock shared with another test
    with tempfile.TemporaryDirectory(prefix="slipway-chromium-") as profile:
        return subprocess.run(
            [
                str(chromium_binary()),
                "--headless",
                "--no-sandbox",  # root in the test container; the page is our own file
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                *args,
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def screenshot(page: Path, out: Path) -> Path:
    """A PNG of ``page`` as Chromium renders it in a :data:`WINDOW` window.

    Raises:
        RuntimeError: Chromium wrote no screenshot; the message holds its stderr.
    """
    done = _headless(page, f"--screenshot={out}")
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page}: {done.stderr[-2000:]}")
    return out


def rendered_dom(page: Path) -> str:
    """The DOM of ``page`` after Chromium loaded it (``--dump-dom``)."""
    done = _headless(page, "--dump-dom")
    if done.returncode != 0 or "<html" not in done.stdout:
        raise RuntimeError(f"chromium could not load {page}: {done.stderr[-2000:]}")
    return done.stdout
