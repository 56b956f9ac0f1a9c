"""slipway: a scikit-learn model from a versioned dataset to a monitored, rollback-able service.

The library is one package per capability (``data``, ``training``, ``registry``, ``packaging``,
``release``, ``orchestration``, ``monitoring``, ``serving``, ``cli``) over a small base
(``config``, ``errors``, ``params``, ``versions``). docs/architecture.md shows the tree and the
import directions, which import-linter checks.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PACKAGE_VERSION": "config",
        "Settings": "config",
        "SlipwayError": "errors",
        "VersionCode": "versions",
        "load_settings": "config",
    },
)
