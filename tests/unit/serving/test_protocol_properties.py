"""Property tests of the infer request parser: any JSON value is rows or an InvalidInput.

The parser runs on whatever orjson decodes; anything other than an InvalidInput-family error
(TypeError, KeyError, IndexError, ...) would be a 500 from a malformed request.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from slipway.serving.errors import BatchTooLarge, InvalidInput
from slipway.serving.protocol import read_infer_request
from slipway.serving.schema import INPUT_NAME, InferenceRequest

FEATURES = ["a", "b"]
MAX_ROWS = 4

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", INPUT_NAME, "FP64", "FP32", "INT64", "INT32", "BOOL", *FEATURES])
    | st.text(max_size=5)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["id", "inputs", "outputs", "name", "shape", "datatype", "data", "parameters"]
            )
            | st.text(max_size=3),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
# near-valid tensors reach the deeper checks that arbitrary JSON rarely gets to
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from([INPUT_NAME, *FEATURES]) | json_values,
        "shape": st.lists(st.integers(-2, 5) | json_values, max_size=3) | json_values,
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"])
        | json_values,
        "data": st.lists(
            st.integers() | st.floats() | st.lists(st.integers() | st.floats(), max_size=3),
            max_size=8,
        )
        | json_values,
    }
)
parameters = st.dictionaries(
    st.sampled_from(["binary_data_output", "binary_data", "binary_data_size", "priority"]),
    st.booleans() | st.integers(-1, 3) | json_values,
    max_size=2,
)
outputs = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["label", "probability"]) | json_values},
        optional={"parameters": parameters | json_values},
    )
    | json_values,
    max_size=3,
)
bodies = json_values | st.fixed_dictionaries(
    {"inputs": st.lists(tensors | json_values, min_size=1, max_size=3)},
    optional={"id": json_values, "outputs": outputs | json_values, "parameters": parameters},
)


def check(body) -> None:
    try:
        asked = read_infer_request(body, FEATURES, MAX_ROWS)
    except (InvalidInput, BatchTooLarge):  # 400 and 413; anything else fails the test
        return
    rows = asked.rows
    assert rows.dtype == np.float64
    assert rows.shape[1] == len(FEATURES)
    assert 1 <= len(rows) <= MAX_ROWS
    assert np.isfinite(rows).all()
    # the documented schema is not stricter than the parser: what is served validates
    InferenceRequest.model_validate(body)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
@example({"inputs": [{"name": [0]}, {"name": "a"}]})
@example({"inputs": [{"name": [0]}]})
@example({"inputs": [{"name": {}}, {"name": {}}]})
@example({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 2], "data": [[1]]}]})
@example({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 2], "data": [1, [2]]}]})
@example({"inputs": [{"name": "a", "datatype": "FP64", "shape": [1, 1], "data": [[1e308, 1]]}]})
def test_any_json_is_rows_or_a_4xx(body) -> None:
    check(body)


VALID = {"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}


@pytest.mark.parametrize(
    "tensor",
    [
        {**VALID, "name": ""},
        {**VALID, "shape": []},
        {**VALID, "shape": [0, 2]},
        {**VALID, "shape": [1, 2, 1]},
        {**VALID, "data": []},
        {**VALID, "data": [[]]},
        {**VALID, "datatype": "BOOL"},
        {**VALID, "datatype": "INT64", "data": [1.5, 2.0]},
        {**VALID, "datatype": "INT32", "data": [1, 2**31]},
        {**VALID, "name": ["input-0"]},
    ],
    ids=[
        "empty-name",
        "empty-shape",
        "n-0",
        "3-dims",
        "no-data",
        "empty-row",
        "bool",
        "int64-fraction",
        "int32-overflow",
        "list-name",
    ],
)
def test_the_schema_states_what_the_parser_refuses(tensor: dict) -> None:
    body = {"inputs": [tensor]}
    with pytest.raises(InvalidInput):
        read_infer_request(body, FEATURES, MAX_ROWS)
    with pytest.raises(ValidationError):
        InferenceRequest.model_validate(body)
    read_infer_request({"inputs": [VALID]}, FEATURES, MAX_ROWS)  # the baseline is valid
    InferenceRequest.model_validate({"inputs": [VALID]})


binary_tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from([INPUT_NAME, *FEATURES]),
        "shape": st.lists(st.integers(1, 4), min_size=1, max_size=2),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"]),
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(0, 40)}),
    }
)


@settings(max_examples=500, deadline=None)
@given(st.lists(binary_tensors, min_size=1, max_size=3), st.binary(max_size=80))
@example(
    [
        {"name": "a", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
        {"name": "b", "shape": [2, 1], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
    ],
    np.array([1, 2], "<i4").tobytes() + np.array([0.5, 1.5], "<f4").tobytes(),
)
@example(
    [{"name": "b", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}],
    b"\x01\x00\x00\x00x\x00\x00\x00\x00",
)
def test_any_binary_part_is_rows_or_a_4xx(tensors, raw: bytes) -> None:
    try:
        asked = read_infer_request({"inputs": tensors}, FEATURES, MAX_ROWS, memoryview(raw))
    except (InvalidInput, BatchTooLarge):
        return
    assert asked.rows.dtype == np.float64
    assert asked.rows.shape[1] == len(FEATURES)
    assert np.isfinite(asked.rows).all()
    assert sum(t["parameters"]["binary_data_size"] for t in tensors) == len(raw)
