"""Fixtures shared by the unit tests of the model server."""

from pathlib import Path

import pytest

from tests.support.serving import client_factory


@pytest.fixture
def make_client(tmp_path: Path):
    """Build an app on a fresh EFS folder and Prometheus registry: ``make(...) -> (client, registry)``."""
    with client_factory(tmp_path) as make:
        yield make


@pytest.fixture
def served(make_client):
    """A client (and registry) serving the default, healthy package."""
    return make_client()
