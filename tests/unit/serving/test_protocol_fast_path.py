"""The short ways through the parser accept exactly what the full parser accepts, with the same rows.

``decode_infer_request`` tries ``_plain_request`` first (one FP64 ``input-0`` tensor, JSON data
or binary); anything it declines goes to ``read_infer_request``, whose messages the error tests
check. The server tries ``one_row`` before both (the usual one-row request and nothing else).
So a short way must never accept a body the full parser refuses, and must give the same rows
when both accept; ``encode_one_answer`` must give the bytes of ``encode_plain_answer``.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from slipway.serving.errors import BatchTooLarge, InvalidInput
from slipway.serving.protocol import (
    ALL_OUTPUTS,
    ALL_OUTPUTS_BINARY,
    _plain_request,
    decode_infer_request,
    encode_one_answer,
    encode_plain_answer,
    one_row,
    read_infer_request,
)
from slipway.serving.schema import INPUT_NAME

FEATURES = ["a", "b", "c"]
MAX_ROWS = 200
NO_BINARY = memoryview(b"")

values = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from([0, 1, 0.0, 1.0, -0.0])
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
    | st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3)
)
# mostly numbers (the common case), sometimes one odd value among them
flat = st.lists(
    st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0, 1, 0.0, 1.0]),
    min_size=1,
    max_size=700,
)


@st.composite
def bodies(draw) -> dict:
    rows = draw(st.integers(-1, MAX_ROWS + 2) | st.sampled_from([1.0, True, "1"]))
    width = draw(st.sampled_from([3, 3, 3, 2, 4, True]))
    data = draw(flat)
    if draw(st.booleans()):
        data[draw(st.integers(0, len(data) - 1))] = draw(values)
    if draw(st.booleans()) and isinstance(rows, int) and rows > 0:  # as many values as rows * 3
        data = (data * (rows * 3 // len(data) + 1))[: rows * 3]
        if draw(st.booleans()):  # nested as rows
            data = [data[i : i + 3] for i in range(0, len(data), 3)]
    tensor = {
        "name": draw(st.sampled_from([INPUT_NAME, INPUT_NAME, "a"])),
        "shape": draw(st.sampled_from([[rows, width], [rows, width], [rows], [rows, width, 1]])),
        "datatype": draw(st.sampled_from(["FP64", "FP64", "FP32", "INT64"])),
        "data": data,
    }
    if draw(st.integers(0, 9)) == 0:
        tensor["parameters"] = {}
    body = {"inputs": [tensor]}
    extra = draw(st.integers(0, 12))
    if extra == 0:
        body["id"] = draw(st.text(max_size=3) | st.integers(-5, 5) | st.just("x" * 129))
    elif extra == 1:
        body["outputs"] = [{"name": "label"}]
    elif extra == 2:
        body["parameters"] = {"binary_data_output": draw(st.booleans() | st.integers(0, 1))}
    elif extra == 3:
        body["parameters"] = {"binary_data_output": True, "priority": 1}
    return body


@st.composite
def binary_bodies(draw) -> tuple[dict, bytes]:
    rows = draw(st.integers(0, 4))
    width = draw(st.sampled_from([3, 3, 3, 2]))
    count = rows * width
    values = draw(
        st.lists(st.floats(width=64), min_size=count, max_size=count)  # NaN and inf too
        | st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=12)
    )
    raw = np.array(values, dtype="<f8").tobytes() + draw(st.sampled_from([b"", b"", b"", b"?"]))
    size = draw(st.sampled_from([len(raw)] * 4 + [len(raw) - 1, 8 * count, "8"]))
    parameters = {"binary_data_size": size}
    if draw(st.integers(0, 5)) == 0:
        parameters = draw(st.sampled_from([{**parameters, "binary_data": True}, {}]))
    tensor = {
        "name": draw(st.sampled_from([INPUT_NAME] * 4 + ["a"])),
        "shape": draw(st.sampled_from([[rows, width]] * 4 + [[count]])),
        "datatype": draw(st.sampled_from(["FP64"] * 4 + ["FP32"])),
        "parameters": parameters,
    }
    if draw(st.integers(0, 9)) == 0:
        tensor["data"] = values
    body = {"inputs": [tensor]}
    if draw(st.booleans()):
        body["parameters"] = {"binary_data_output": draw(st.booleans())}
    return body, raw


def _binary(values: list[float]) -> tuple[dict, bytes]:
    raw = np.array(values, dtype="<f8").tobytes()
    tensor = {"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64"}
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return {"inputs": [tensor]}, raw


def full(body: dict, binary: memoryview = NO_BINARY):
    try:
        return read_infer_request(body, FEATURES, MAX_ROWS, binary)
    except (InvalidInput, BatchTooLarge):
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, True]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, "3"]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, None]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [True, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, [3]]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [-1, 2**63, 3]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, {}]}]}
)
def test_the_short_way_accepts_what_the_parser_accepts_with_the_same_rows(body: dict) -> None:
    text = orjson.dumps(body)
    body = orjson.loads(text)  # what the server parses: orjson's values
    expected = full(body)
    # both ways through the short way: checking the values' types, and (when the text has
    # no true or false, as decode_infer_request looks) leaving them to numpy
    no_bools = b"true" not in text and b"false" not in text
    for flag in {False, no_bools}:
        short = _plain_request(body, NO_BINARY, len(FEATURES), MAX_ROWS, no_bools=flag)
        if short is None:
            continue  # declined: the full parser decides (and names the problem)
        assert expected is not None, "the short way accepted a request the parser refuses"
        assert short.rows.dtype == np.float64
        assert short.rows.flags.c_contiguous
        np.testing.assert_array_equal(short.rows, expected.rows)
        assert short.request_id == expected.request_id
        assert short.outputs == expected.outputs
        assert short.outputs in (ALL_OUTPUTS, ALL_OUTPUTS_BINARY)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(binary_bodies())
@example(_binary([1.0, float("nan"), 2.0]))
@example(_binary([1.0, float("inf"), 2.0]))
def test_the_short_way_reads_binary_data_as_the_parser_does(request: tuple[dict, bytes]) -> None:
    body, raw = request
    short = _plain_request(body, memoryview(raw), len(FEATURES), MAX_ROWS)
    expected = full(body, memoryview(raw))
    if short is None:
        return
    assert expected is not None, "the short way accepted a request the parser refuses"
    np.testing.assert_array_equal(short.rows, expected.rows)
    assert short.rows.dtype == np.float64
    assert short.outputs == expected.outputs


def test_binary_data_output_is_kept_on_the_short_way() -> None:
    raw = np.arange(3.0).tobytes()
    tensor = {"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64"}
    tensor["parameters"] = {"binary_data_size": len(raw)}
    body = {"inputs": [tensor], "parameters": {"binary_data_output": True}}
    short = _plain_request(body, memoryview(raw), len(FEATURES), MAX_ROWS)
    assert short is not None
    assert short.outputs is ALL_OUTPUTS_BINARY
    assert short.rows.tolist() == [[0.0, 1.0, 2.0]]


@pytest.mark.parametrize("rows", [1, 2, 100])
@pytest.mark.parametrize("nested", [False, True])
def test_the_usual_request_takes_the_short_way(rows: int, nested: bool) -> None:
    data = np.random.default_rng(rows).normal(size=(rows, 3))
    data[0, 0] = 0.0  # a value a boolean would also give: its type is looked at
    listed = data.tolist() if nested else data.ravel().tolist()
    body = {"id": "r", "inputs": [{"name": INPUT_NAME, "shape": [rows, 3], "datatype": "FP64"}]}
    body["inputs"][0]["data"] = listed
    short = _plain_request(orjson.loads(orjson.dumps(body)), NO_BINARY, len(FEATURES), MAX_ROWS)
    assert short is not None
    np.testing.assert_array_equal(short.rows, data)
    decoded = decode_infer_request(orjson.dumps(body), None, FEATURES, MAX_ROWS)
    np.testing.assert_array_equal(decoded.rows, data)
    assert decoded.request_id == "r"


@pytest.mark.parametrize("odd", [True, False, None, "1.5", [1.0]])
@pytest.mark.parametrize("rows", [1, 100])
def test_a_value_that_is_not_a_number_is_refused_by_name(odd, rows: int) -> None:
    data = [0.5] * (rows * 3)
    data[rows * 3 // 2] = odd
    body = orjson.dumps(
        {"inputs": [{"name": INPUT_NAME, "shape": [rows, 3], "datatype": "FP64", "data": data}]}
    )
    with pytest.raises(InvalidInput, match=f"tensor '{INPUT_NAME}'"):
        decode_infer_request(body, None, FEATURES, MAX_ROWS)


@pytest.mark.parametrize("rows", [1, 3])
def test_the_plain_answer_is_the_answer_of_every_output_as_json(rows: int) -> None:
    from slipway.serving.protocol import ALL_OUTPUTS, encode_infer_response, encode_plain_answer

    labels = np.arange(rows, dtype=np.int64) % 2
    proba = np.linspace(0.1, 0.9, rows)
    header = {"model_name": "m", "model_version": "v1", "id": "an-id"}
    general, length = encode_infer_response(
        dict(header), {"label": labels, "probability": proba}, ALL_OUTPUTS
    )
    assert length is None
    assert encode_plain_answer("m", "v1", "an-id", labels, proba) == general


numbers = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from([0, 1, 0.0, 1.0, -0.0])
)


@st.composite
def one_row_bodies(draw) -> object:
    """The usual one-row request, or it with one thing off (half the time)."""
    data = draw(st.lists(numbers, min_size=3, max_size=3))
    tensor = {"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": data}
    body: object = {"inputs": [tensor]}
    change = draw(st.integers(0, 23))
    if change == 12:
        data[draw(st.integers(0, 2))] = draw(values)
    elif change == 13:
        tensor["data"] = draw(st.lists(numbers, max_size=5) | st.just([data]) | st.just(data[0]))
    elif change == 14:
        shapes = [[1.0, 3], [True, 3], [1, 3.0], [1, True], [2, 3], [0, 3], [3], [1, 3, 1]]
        tensor["shape"] = draw(st.sampled_from([*shapes, [1, 2], [[1], 3], "1,3", None]))
    elif change == 15:
        tensor["name"] = draw(st.sampled_from(["a", [INPUT_NAME], None, "input-1"]))
    elif change == 16:
        tensor["datatype"] = draw(st.sampled_from(["FP32", "INT64", "fp64", 64, None]))
    elif change == 17:
        tensor["parameters"] = draw(st.sampled_from([{}, {"binary_data_size": 24}]))
    elif change == 18:
        del tensor[draw(st.sampled_from(sorted(tensor)))]
    elif change == 19:
        body = {"inputs": [tensor], "id": draw(st.text(max_size=3) | st.integers(0, 3))}
    elif change == 20:
        body = {"inputs": [tensor], "outputs": [{"name": "label"}]}
    elif change == 21:
        body = {"inputs": [tensor], "parameters": {"binary_data_output": draw(st.booleans())}}
    elif change == 22:
        body = draw(st.sampled_from([{"inputs": [tensor, tensor]}, {"inputs": tensor}, [body]]))
    elif change == 23:
        body = {"input": [tensor]}
    return body


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_row_bodies())
@example({"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]})
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, True]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [True, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1.0, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [[1], [2], [3]]}]}
)
@example(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2, "3"]}]}
)
@example(
    {
        "inputs": [
            {"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": [1, 2**64 - 1, 3]}
        ]
    }
)
def test_one_row_accepts_only_what_the_parser_accepts_with_the_same_row(body: object) -> None:
    text = orjson.dumps(body)
    payload = orjson.loads(text)  # what the server parses: orjson's values
    row = one_row(payload, len(FEATURES))
    try:
        expected = decode_infer_request(text, None, FEATURES, MAX_ROWS)
    except (InvalidInput, BatchTooLarge):
        expected = None
    if row is None:
        return  # declined: the parser decides (and names the problem)
    assert expected is not None, "one_row accepted a request the parser refuses"
    assert row.dtype == np.float64
    assert row.flags.c_contiguous
    assert row.shape == (1, len(FEATURES))
    np.testing.assert_array_equal(row, expected.rows)
    # what the server answers for it is the usual answer: no id of its own, every output as JSON
    assert expected.request_id is None
    assert expected.outputs is ALL_OUTPUTS


def test_the_usual_one_row_request_is_taken_by_one_row() -> None:
    data = [0.0, 1, -2.5]
    body = {"inputs": [{"name": INPUT_NAME, "shape": [1, 3], "datatype": "FP64", "data": data}]}
    row = one_row(orjson.loads(orjson.dumps(body)), 3)
    assert row is not None
    assert row.tolist() == [[0.0, 1.0, -2.5]]
    assert one_row(body, 4) is None  # another model's width


@settings(max_examples=500, deadline=None)
@given(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(0, 1, width=32),
    st.booleans(),
)
def test_the_one_row_answer_is_the_plain_answer(
    label: int, score: float, score32: float, float32: bool
) -> None:
    # ONNX Runtime's probabilities: float32 or float64, as the model was converted
    proba = np.array([[1 - score32, score32]], np.float32) if float32 else np.array([[0, score]])
    labels = np.array([label], dtype=np.int64)
    # as the server takes them from ONNX Runtime's outputs, and as predict_onnx gives them
    one = encode_one_answer("m", "v1", "an-id", labels.item(), proba[0, 1].item())
    plain = np.ascontiguousarray(proba[:, 1], dtype=np.float64)
    assert one == encode_plain_answer("m", "v1", "an-id", labels, plain)
