"""Package surfaces that import their modules on first use (PEP 562).

A capability package lists its public names in ``__init__`` without importing every module at
package import: a KFP task that needs ``read_csv`` must not pay for DVC, and ``slipway --help``
must not pay for MLflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """Build ``__all__``, ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the submodule (relative to ``package``) that defines it.

    Returns:
        ``(__all__, __getattr__, __dir__)`` to assign in the package's ``__init__``.
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return names

    return names, __getattr__, __dir__
