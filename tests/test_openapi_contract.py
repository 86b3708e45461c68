"""schemathesis against the OpenAPI document, on the app wired to a real Temporal dev
server, worker, order-system simulator and read model: no 5xx, and every answer
matches the document (status codes, content types, bodies, headers)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from db.accounts import create_token, create_user
from db.engine import make_engine, make_sessionmaker
from tests.conftest import BackgroundWorker, make_settings
from web import create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def contract_app(temporal_address, order_system_url, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('contract') / 'db.sqlite'}"
    app_settings = make_settings(temporal_address, url, order_system_url)
    worker = BackgroundWorker(app_settings)
    worker.start()
    app = create_app(app_settings)
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        create_user(session, "admin", "admin", "admin-pass")
        token = create_token(session, "admin")
    engine.dispose()
    client = app.test_client()
    # One real case, so generated requests also reach cases that exist.
    client.post("/api/v1/cases", headers={"Authorization": f"Bearer {token}"}, json={
        "kind": "complaint", "channel": "web", "order_id": "SO-10001",
        "customer": {"id": "C-1001", "name": "王芳"}, "description": "seed"})
    yield app, token
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()


def operations():
    """Every operation of the document, read from a throwaway app (no servers needed)."""
    from web.openapi import build_spec

    schema = schemathesis.openapi.from_dict(build_spec())
    return [result.ok() for result in schema.get_all_operations()]


OPERATIONS = operations()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_api_matches_its_document(operation, contract_app):
    app, token = contract_app
    live = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    live_operation = live[operation.path][operation.method.upper()]

    @given(case=live_operation.as_strategy())
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def exercise(case):
        headers = {"Authorization": f"Bearer {token}"} if case.operation.security else {}
        if case.headers and "Idempotency-Key" in case.headers:
            headers["Idempotency-Key"] = case.headers["Idempotency-Key"]
        case.call_and_validate(headers=headers, checks=CHECKS)

    exercise()
