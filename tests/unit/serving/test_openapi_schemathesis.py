"""schemathesis against the server's own ``/openapi.json``: no 5xx, answers as documented.

The app runs in process (schemathesis' ASGI transport) with the model loaded. Every operation
gets a fixed, derandomized budget of positive (schema-valid) and negative (schema-invalid)
requests; the checks: no server error, a documented status code, content type, headers and body
schema, and that what the schema refuses the server refuses (4xx), so the schema is never
stricter than the parser in a way a client would rely on.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation import GenerationMode

MAX_EXAMPLES = 50
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture
def api_schema(make_client):
    client, _ = make_client()
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def columns_schema(make_client):
    """The same for a model with categoricals, nulls and a boolean (the per-column path)."""
    from tests.support.tasks import TASK_VERSION, task_package

    client, _ = make_client(task_package("penguins"), version=TASK_VERSION)
    found = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    found.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
    )
    return found


columns = schemathesis.pytest.from_fixture("columns_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case) -> None:
    if case.media_type == "application/json" and case.headers:
        # the header frames binary tensor data; with a JSON body it only cuts the JSON short
        case.headers.pop("Inference-Header-Content-Length", None)
    case.call_and_validate(checks=CHECKS)


@columns.include(path_regex="infer").parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_infer_of_a_model_with_categoricals_answers_as_documented(case) -> None:
    if case.media_type == "application/json" and case.headers:
        case.headers.pop("Inference-Header-Content-Length", None)
    case.call_and_validate(checks=CHECKS)


def test_the_document_names_the_features_once_the_model_is_loaded(make_client) -> None:
    client, _ = make_client(install=False)  # nothing to load: never ready
    doc = client.get("/openapi.json").json()
    assert "enum" not in doc["components"]["schemas"]["FloatInput"]["properties"]["name"]
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["parameters"][0]["schema"]["enum"] == ["slipway"]
    assert "examples" not in infer["requestBody"]["content"]["application/json"]
