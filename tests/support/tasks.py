"""Model packages of every task for the serving tests: penguin-like and diamond-like tables.

The tables and specs are those of :mod:`tests.model.test_tasks` (categoricals, gaps, a boolean);
the model is the search's template Pipeline (``slipway.training.search.build_pipeline``: the
spec's ColumnTransformer and a linear model) or a random forest (no ONNX copy: skops), fitted on
the training split, packaged by ``build_package`` exactly as promotion calls it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from slipway.data import DatasetSpec, feature_frame, split_dataset
from slipway.packaging.package import PackageInfo, build_package
from tests.model.test_tasks import DIAMOND_SPEC, PENGUIN_SPEC, diamond_like, penguin_like

PLANS = ["basic", "plus", "premium"]
REGIONS = ["north", "south", "east", "west"]


def churn_table(rows: int = 400) -> pd.DataFrame:
    """Customers who leave: short tenure on the basic plan in the north; region is mostly noise."""
    rng = np.random.default_rng(11)
    plan = rng.choice(PLANS, size=rows)
    region = rng.choice(REGIONS, size=rows)
    tenure = rng.integers(1, 72, size=rows)
    spend = rng.normal(50, 15, size=rows).round(2)
    risk = (
        (plan == "basic") * 2.0 + (region == "north") * 1.0 - tenure / 12 + rng.normal(0, 0.5, rows)
    )
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(rows)],
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_spend": spend,
            "churned": np.where(risk > 0, "yes", "no"),
        }
    )


CHURN_SPEC = DatasetSpec.model_validate(
    {
        "name": "churn",
        "task": "binary",
        "target": "churned",
        "classes": ["no", "yes"],
        "positive_class": "yes",
        "features": [
            {"name": "plan", "kind": "categorical", "categories": PLANS},
            {"name": "region", "kind": "categorical", "categories": REGIONS},
            {"name": "tenure_months", "kind": "integer"},
            {"name": "monthly_spend", "kind": "numeric"},
        ],
        "ignore": ["customer_id"],
    }
)

TASK_VERSION = "v1-20260101-0a1b2c3d"
SPECS = {"penguins": PENGUIN_SPEC, "diamonds": DIAMOND_SPEC, "churn": CHURN_SPEC}
TABLES = {"penguins": penguin_like, "diamonds": diamond_like, "churn": churn_table}


def spec_of(task: str) -> DatasetSpec:
    return SPECS[task]


@functools.cache
def split(task: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)`` of the table, as the pipeline splits it."""
    spec = SPECS[task]
    return split_dataset(TABLES[task](), 0.2, 42, spec.target)


@functools.cache
def fitted(task: str, estimator: str = "linear") -> Any:
    from sklearn.pipeline import Pipeline

    from slipway.training.estimators import make_estimator
    from slipway.training.features import build_preprocessor, target_values

    spec = SPECS[task]
    train, _ = split(task)
    scaler = "standard" if estimator == "linear" else "none"
    model = Pipeline(
        [
            ("features", build_preprocessor(spec, scaler)),
            ("clf", make_estimator(estimator, spec.task, 42)),
        ]
    )
    return model.fit(feature_frame(train, spec), target_values(train, spec))


def holdout_x(task: str) -> pd.DataFrame:
    return feature_frame(split(task)[1], SPECS[task])


@functools.cache
def task_package(
    task: str, estimator: str = "linear", model_name: str = "slipway", onnx: bool = True
) -> dict:
    """``{file: bytes}`` of a package of ``task`` (``penguins`` or ``diamonds``); ``onnx=False``
    packages the skops model only (the server's fallback)."""
    spec = SPECS[task]
    train, holdout = split(task)
    info = PackageInfo(
        model_name=model_name,
        version_code=TASK_VERSION,
        run_id="0a1b2c3d" * 4,
        registry_version=1,
        dataset={"version": "v1", "path": f"data/{task}/v1.csv", "md5": "0" * 32, "rev": ""},
        git_commit="test",
        metrics={},
    )
    return build_package(
        fitted(task, estimator),
        feature_frame(train, spec),
        info,
        spec=spec,
        train_y=train[spec.target].to_numpy(),
        check_x=feature_frame(holdout, spec),
        onnx=onnx,
    )


def column_inputs(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict[str, Any]]:
    """One JSON tensor per feature of ``frame`` (a feature_frame): strings, null when missing."""
    inputs = []
    for feature in spec.features:
        values = frame[feature.name].tolist()
        if feature.kind == "categorical":
            data = [None if v == "" else v for v in values]
            datatype = "BYTES"
        elif feature.kind == "boolean":
            data = [None if v != v else bool(v) for v in values]
            datatype = "BOOL"
        else:
            data = [None if v != v else float(v) for v in values]
            datatype = "FP64"
        inputs.append(
            {"name": feature.name, "shape": [len(values)], "datatype": datatype, "data": data}
        )
    return inputs
