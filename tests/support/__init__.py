"""Helpers shared by the tests: real processes, fakes for unit tests, the repository root."""

from __future__ import annotations

from pathlib import Path

#: The checkout under test (params.yaml, data/, manifests/, pipelines/ ...).
REPO = Path(__file__).resolve().parents[2]
