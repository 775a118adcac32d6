"""Schemathesis against the served OpenAPI document of the exchange endpoints.

The schema is loaded from the Django WSGI application itself (``/_/oidc/openapi.json``), and
every generated request — valid by the schema and deliberately invalid alike — goes through the
same application in-process. Checks: no server error, documented status codes and content
types, and response bodies that conform to the documented schemas (the problem document for
every error).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.plugins.secrets_guard import count
from trusted_publishing.models import IssuedToken, UsedIdentityToken
from trusted_publishing.openapi import SCHEMA

app = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/_/oidc/openapi.json", app)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """Like Django's test client: a WSGI request must not close the test's DB connection.

    (On PostgreSQL close_old_connections closes a connection inside the test transaction.)
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_served_document_is_the_maintained_one(client: Any) -> None:
    response = client.get("/_/oidc/openapi.json")
    assert response.status_code == 200
    assert response.json() == SCHEMA
    documented = set(SCHEMA["paths"])
    assert documented == {
        "/.well-known/pytp",
        "/_/oidc/audience",
        "/_/oidc/mint-token",
        "/_/oidc/github/mint-token",
        "/_/oidc/burn-token",
    }


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_exchange_api_conforms(
    case: Any, github_publisher: Any, keep_test_connection: None
) -> None:
    response = case.call()
    count("fuzzed requests")
    case.validate_response(response, checks=CHECKS)
    # Random input never mints anything, and never half-writes.
    assert IssuedToken.objects.count() == 0
    assert UsedIdentityToken.objects.count() == 0
