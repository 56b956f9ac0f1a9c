"""slipway.data.memory: mimalloc's options are set only while they can still take effect.

Each case runs in a fresh interpreter: this test process has imported pyarrow already.
"""

import json
import os
import subprocess
import sys

import pytest

from slipway.data.memory import MIMALLOC_ENV, return_arrow_memory_at_once

CHILD = r"""
import json, os, sys
if sys.argv[1] == "after-pyarrow":
    import pyarrow
from slipway.data import return_arrow_memory_at_once
took = return_arrow_memory_at_once()
import pandas  # loads pyarrow
print(json.dumps({"took": took, "env": {k: os.environ.get(k) for k in sys.argv[2:]}}))
"""


def run_child(when: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, when, *MIMALLOC_ENV],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_before_pyarrow_loads_the_options_are_set():
    assert run_child("first", {}) == {"took": True, "env": MIMALLOC_ENV}


def test_once_pyarrow_is_imported_nothing_is_set():
    assert run_child("after-pyarrow", {}) == {
        "took": False,
        "env": dict.fromkeys(MIMALLOC_ENV),
    }


def test_a_value_the_environment_sets_is_kept():
    result = run_child("first", {"MIMALLOC_PURGE_DELAY": "25"})
    assert result["env"] == {**MIMALLOC_ENV, "MIMALLOC_PURGE_DELAY": "25"}


def test_in_this_process_pyarrow_is_loaded_so_it_declines(monkeypatch):
    pytest.importorskip("pyarrow")
    for name in MIMALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    assert return_arrow_memory_at_once() is False
    assert not any(name in os.environ for name in MIMALLOC_ENV)
