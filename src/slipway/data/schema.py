"""The breast-cancer contract in code, for code that has no ``data/`` folder at hand.

The pipeline no longer uses this module: pull-data reads every dataset's spec from
``data/<dataset>/dataset.yaml`` in the DVC project and validate-data checks the table against
that (:func:`~slipway.data.checks.validate_with_spec`). What stays here is the bundled
breast-cancer spec built in code (a data test asserts it equals the committed YAML) and the
``validate_dataset`` shortcut the benchmarks call.
"""

from __future__ import annotations

import pandas as pd

from slipway.data.checks import build_spec_schema, validate_with_spec
from slipway.data.report import ValidationReport, ensure_valid
from slipway.data.spec import DatasetSpec, FeatureSpec
from slipway.data.table import DATASET_NAME, TARGET

__all__ = [
    "FEATURES",
    "FEATURE_MAX",
    "LABELS",
    "ValidationReport",
    "breast_cancer_spec",
    "build_schema",
    "ensure_valid",
    "validate_dataset",
]

# The 30 measurements of the Wisconsin breast-cancer data (mean, error and worst of each).
_MEASURES = [
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
]
FEATURES: tuple[str, ...] = tuple(
    [f"mean_{m}" for m in _MEASURES]
    + [f"{m}_error" for m in _MEASURES]
    + [f"worst_{m}" for m in _MEASURES]
)
LABELS = (0, 1)
# Physical measurements are non-negative; the upper bound catches unit mix-ups (areas are
# < 5,000 in the data, so 10x above that is a corrupt row, not a big tumour).
FEATURE_MAX = 50_000.0


def breast_cancer_spec(
    target: str = TARGET, min_rows: int = 100, max_duplicate_rows: int = 0
) -> DatasetSpec:
    """The spec of the bundled breast-cancer table (committed as data/breast-cancer/dataset.yaml).

    Built in code so that the component image, which ships the library but not ``data/``, checks
    the same contract; a data test asserts that the committed YAML is equal to it.

    Args:
        target: label column (1 = malignant, 0 = benign).
        min_rows: fewer rows than this fail validation.
        max_duplicate_rows: how many fully duplicated rows are tolerated.
    """
    return DatasetSpec(
        name=DATASET_NAME,
        task="binary",
        target=target,
        classes=list(LABELS),
        positive_class=1,
        features=[
            FeatureSpec(name=name, kind="numeric", nullable=False, min=0.0, max=FEATURE_MAX)
            for name in FEATURES
        ],
        min_rows=min_rows,
        max_duplicate_rows=max_duplicate_rows,
    )


def build_schema(target: str = TARGET, min_rows: int = 100, max_duplicate_rows: int = 0):
    """The pandera schema of the breast-cancer dataset, generated from its spec.

    Args:
        target: label column (1 = malignant, 0 = benign).
        min_rows: fewer rows than this fail validation.
        max_duplicate_rows: how many fully duplicated rows are tolerated.
    """
    return build_spec_schema(breast_cancer_spec(target, min_rows, max_duplicate_rows))


def validate_dataset(
    frame: pd.DataFrame, target: str = TARGET, min_rows: int = 100, max_duplicate_rows: int = 0
) -> ValidationReport:
    """Validate ``frame`` lazily against the breast-cancer spec, collecting every violation.

    The limits come from ``params.yaml`` (``data``); the checks are those of
    :func:`~slipway.data.checks.validate_with_spec`, poison checks included.
    """
    return validate_with_spec(frame, breast_cancer_spec(target, min_rows, max_duplicate_rows))
