"""KFP components: thin adapters over ``slipway`` library functions.

Each module holds one plain function; :func:`build_components` turns them into lightweight Python
components whose ``base_image`` is our component image, chosen at compile time from configuration.
The image already contains kfp and slipway, so nothing is installed when a task starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components.evaluate import evaluate
from components.promote import promote
from components.pull_data import pull_data
from components.search import search
from components.search_plan import search_plan
from components.search_shard import search_shard
from components.validate_data import validate_data

__all__ = ["build_components"]

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "pull-data": pull_data,
    "validate-data": validate_data,
    "search-plan": search_plan,
    "search-shard": search_shard,
    "search": search,
    "evaluate": evaluate,
    "promote": promote,
}


def build_components(image: str) -> dict[str, Any]:
    """The components, by kebab-case name, running in ``image``."""
    from kfp import dsl

    return {
        name: dsl.component(base_image=image, install_kfp_package=False)(function)
        for name, function in _FUNCTIONS.items()
    }
