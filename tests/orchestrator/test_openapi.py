"""The OpenAPI document: an example per route, and schemathesis over every operation.

schemathesis generates valid and invalid requests from /openapi.json (bounded examples,
so this stays part of ``make test``) and checks that no response is a 5xx and that every
response conforms to the schema: documented status, content type, headers and body.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings
from tests.orchestrator.conftest import AUTH

MAX_EXAMPLES = 12
"""Generated requests per operation and mode: enough to find a 5xx, bounded for ``make test``."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@schemathesis.serializer("text/csv")
def _csv(ctx: Any, value: Any) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else str(value).encode()


def _has_example(operation: dict[str, Any]) -> bool:
    text = repr(operation)
    return "'example'" in text or "'examples'" in text


def test_docs_and_an_example_per_route(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    operations = [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(operations) >= 20
    schemas = spec["components"]["schemas"]
    for method, path, op in operations:
        refs = [s.split("/")[-1] for s in _refs(op)]
        assert _has_example(op) or any(_has_example(schemas[r]) for r in refs), (method, path)
        assert op.get("summary"), (method, path)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


# The document is the same for every settings object; each test calls its own app over
# its own Redis db and database (schemathesis' lazy fixture loader predates pytest 9).
schema = schemathesis.openapi.from_dict(create_app(OrchestratorSettings(_env_file=None)).openapi())


@pytest.fixture
def app(stack, settings):
    app = create_app(settings)
    with TestClient(app):  # run the app's lifespan around the generated calls
        yield app


@schema.parametrize()
@hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))
def test_no_5xx_and_responses_conform(case, app):
    case.call_and_validate(app=app, headers=AUTH, checks=CHECKS)
