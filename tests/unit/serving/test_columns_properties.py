"""Property tests of the per-column path: any JSON value is typed columns or an InvalidInput.

A contract with every kind (a nullable number, an integer, a boolean, a nullable categorical)
reads arbitrary JSON and near-valid tensors, and arbitrary binary parts; anything other than an
InvalidInput-family error would be a 500. What it accepts has the model's types: float64 with
NaN only where nullable, 0/1 booleans, text categoricals, and validates against the schema.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from slipway.serving.contract import Contract, FeatureInput
from slipway.serving.errors import BatchTooLarge, InvalidInput
from slipway.serving.protocol import read_infer_request
from slipway.serving.schema import InferenceRequest
from tests.unit.serving.test_protocol_properties import json_values

CONTRACT = Contract(
    "multiclass",
    (
        FeatureInput("x", "numeric", nullable=True),
        FeatureInput("n", "integer"),
        FeatureInput("b", "boolean"),
        FeatureInput("c", "categorical", nullable=True, categories=("p", "q")),
    ),
    ("k1", "k2", "k3"),
    None,
    "BYTES",
)
NAMES = CONTRACT.names
MAX_ROWS = 4

values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["p", "q", "", "zz"])
)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from([*NAMES, "input-0"]) | json_values,
        "shape": st.lists(st.integers(-1, 3), min_size=1, max_size=2) | json_values,
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"]),
        "data": st.lists(values | st.lists(values, max_size=2), max_size=4) | json_values,
    }
)
bodies = json_values | st.fixed_dictionaries(
    {"inputs": st.lists(tensors, min_size=1, max_size=5)},
    optional={
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["label", "probability", "value"])}),
            max_size=2,
        )
    },
)


NO_BINARY = memoryview(b"")
VALID = {
    "inputs": [
        {"name": "x", "shape": [2], "datatype": "FP64", "data": [None, 1.5]},
        {"name": "n", "shape": [2], "datatype": "INT64", "data": [1, 2]},
        {"name": "b", "shape": [2, 1], "datatype": "BOOL", "data": [[True], [False]]},
        {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["zz", None]},
    ]
}


def check(body, binary: memoryview = NO_BINARY) -> None:
    try:
        asked = read_infer_request(body, NAMES, MAX_ROWS, binary, CONTRACT)
    except (InvalidInput, BatchTooLarge):  # 400 and 413; anything else fails the test
        return
    batch = asked.columns
    assert asked.rows is None
    assert 1 <= batch.rows <= MAX_ROWS
    assert list(batch.columns) == NAMES
    x, n, b, c = (batch.columns[name] for name in NAMES)
    assert x.dtype == n.dtype == b.dtype == np.float64
    assert np.isfinite(n).all()
    assert set(b.tolist()) <= {0.0, 1.0}
    assert not np.isinf(x).any()
    assert all(isinstance(v, str) for v in c.tolist())
    assert batch.unknown.get("c", 0) == sum(v not in ("p", "q", "") for v in c.tolist())
    if not binary:
        InferenceRequest.model_validate(body)  # the schema is not stricter than the parser


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
@example(VALID)
@example({"inputs": [{"name": "c", "shape": [1], "datatype": "BYTES", "data": [None]}] * 4})
def test_any_json_is_typed_columns_or_a_4xx(body) -> None:
    check(body)


binary_tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(NAMES),
        "shape": st.lists(st.integers(1, 3), min_size=1, max_size=2),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "BYTES"]),
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(0, 24)}),
    }
)


@settings(max_examples=500, deadline=None)
@given(st.lists(binary_tensors, min_size=1, max_size=4), st.binary(max_size=80))
def test_any_binary_part_is_typed_columns_or_a_4xx(tensors, raw: bytes) -> None:
    check({"inputs": tensors}, memoryview(raw))


def test_the_valid_example_is_read_as_the_model_columns() -> None:
    batch = read_infer_request(VALID, NAMES, MAX_ROWS, NO_BINARY, CONTRACT).columns
    assert np.isnan(batch.columns["x"][0])
    assert batch.columns["x"][1] == 1.5
    assert batch.columns["b"].tolist() == [1.0, 0.0]
    assert batch.columns["c"].tolist() == ["zz", ""]
    assert batch.unknown == {"c": 1}
