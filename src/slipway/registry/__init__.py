"""The MLflow model registry: versions, the ``champion``/``challenger`` aliases, and promotion.

``promote_candidate`` registers a gated candidate, gives it its version code, writes its
package through :mod:`slipway.packaging` and only then moves the ``champion`` alias.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CHAMPION": "client",
        "CandidateRun": "promotion",
        "Promotion": "promotion",
        "TAG_VERSION_CODE": "client",
        "champion_tags": "client",
        "champion_version_code": "client",
        "get_alias_version": "client",
        "get_client": "client",
        "mlflow_tracking_uri": "client",
        "move_alias": "client",
        "promote_candidate": "promotion",
        "register_version": "client",
    },
)
