"""The window's annotations round-trip; the Prometheus client's answers and errors."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from slipway.guard.prometheus import PrometheusClient, PrometheusQueryError
from slipway.guard.state import (
    PAUSED,
    REJECTED,
    RESTORED,
    WINDOW,
    decode_rejected,
    decode_window,
    encode_rejected,
    encode_window,
    is_paused,
    restored_revision,
)
from slipway.guard.window import WindowState, close


def test_window_round_trips_through_its_annotation() -> None:
    state = WindowState(
        revision=12,
        version="v7-20261201-0a1b2c3d",
        started_at=1_780_000_000.25,
        mode="watch",
        failures={"http-5xx-ratio": 2, "mean-confidence-drop": 0},
        checks=9,
        traffic_seen=True,
    )
    text = encode_window(state)
    assert json.loads(text)["started"] == "2026-05-28T20:26:40.250Z"
    assert decode_window({WINDOW: text}) == state
    closed = close(state, "rolled-back", "KPI http-5xx-ratio = 0.3 > threshold 0.05")
    assert decode_window({WINDOW: encode_window(closed)}) == closed


@pytest.mark.parametrize(
    "value", ["", "{", "[]", '{"revision": "x"}', '{"revision":1,"version":"v","started":"t"}',
              '{"revision":1,"version":"v","started":"2026-01-01T00:00:00Z","verdict":"maybe"}'],
)  # fmt: skip
def test_an_unreadable_window_is_no_window(value: str) -> None:
    assert decode_window({WINDOW: value}) is None
    assert decode_window(None) is None


def test_rejected_versions_are_kept_once_oldest_first() -> None:
    text = encode_rejected(["a", "b"], "a")
    assert decode_rejected({REJECTED: text}) == ["b", "a"]
    assert decode_rejected({REJECTED: "not json"}) == []
    assert decode_rejected({REJECTED: '{"a": 1}'}) == []
    many = decode_rejected({REJECTED: encode_rejected([str(i) for i in range(60)], "x")})
    assert len(many) == 50
    assert many[-1] == "x"


def test_restored_revision_and_pause() -> None:
    assert restored_revision({RESTORED: "7"}) == 7
    assert restored_revision({RESTORED: "seven"}) is None
    assert is_paused({PAUSED: " True "})
    assert not is_paused({PAUSED: "false"})
    assert not is_paused(None)


def _client(handler) -> PrometheusClient:
    return PrometheusClient(
        "http://prom:9090/", http=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_query_returns_the_vector_with_labels_and_nan() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.url.params)
        seen["path"] = request.url.path
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"version": "v1"}, "value": [1.0, "0.25"]},
            {"metric": {"version": "v2"}, "value": [1.0, "NaN"]},
        ]}})  # fmt: skip

    samples = _client(handler).query("sum by (version) (x)", at=12.5)
    assert seen["path"] == "/api/v1/query"
    assert (seen["query"], seen["time"]) == ("sum by (version) (x)", "12.500")
    assert samples[0].labels == {"version": "v1"}
    assert samples[0].value == 0.25
    assert math.isnan(samples[1].value)


def test_query_errors_name_the_problem_and_the_fix() -> None:
    def bad_query(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}
        )

    with pytest.raises(
        PrometheusQueryError,
        match=r"rejected the query 'sum by \(' .*bad_data: parse error.*kpis.yaml",
    ):
        _client(bad_query).query("sum by (")

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>grafana</html>")

    with pytest.raises(PrometheusQueryError, match=r"without JSON.*Prometheus itself"):
        _client(html).query("up")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(PrometheusQueryError, match=r"unreachable.*--prometheus-url"):
        _client(down).query("up")

    def matrix(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": []}}
        )

    with pytest.raises(PrometheusQueryError, match="returned a matrix, not an instant vector"):
        _client(matrix).query("up[5m]")
    with pytest.raises(PrometheusQueryError, match="is not http"):
        PrometheusClient("prom:9090")
