"""The dataset spec as a pipeline step receives it, in its Dataset artifact's metadata.

KFP carries artifact metadata as a protobuf ``Struct``, where every number is a double: the spec
pull-data wrote with ``classes: [0, 1]`` and ``min_rows: 100`` arrives as ``[0.0, 1.0]`` and
``100.0``, which the strict spec model refuses. Labels, categories and counts are never
fractional in a valid spec, so whole doubles are turned back into ints before validation.
"""

from __future__ import annotations

from typing import Any

from slipway.data import DatasetSpec, spec_from_metadata


def spec_from_artifact(metadata: dict[str, Any]) -> DatasetSpec:
    """The spec in a KFP Dataset artifact's metadata, numbers restored from protobuf doubles.

    Raises:
        DatasetSpecError: the metadata has no spec, or it is invalid.
    """
    return spec_from_metadata(_whole_doubles_to_int(dict(metadata)))


def _whole_doubles_to_int(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _whole_doubles_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_doubles_to_int(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
