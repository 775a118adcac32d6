"""Shared helpers for the core and provider tests (issuers, publishers, assertions).

Plain functions rather than fixtures so the tests/test_core_* modules can use them too; each
needs the database (call them from tests that use the ``db`` fixture).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from trusted_publishing.models import (
    ActiveStatePublisher,
    AuditEvent,
    GitHubPublisher,
    GitLabPublisher,
    GooglePublisher,
    IssuedToken,
    TrustedIssuer,
    UsedIdentityToken,
)
from trusted_publishing.testing import TestIssuer

GITHUB_URL = "https://token.actions.test"
GITLAB_URL = "https://gitlab.test"
GOOGLE_URL = "https://accounts.google.test"
ACTIVESTATE_URL = "https://platform.activestate.test/api/v1/oauth/oidc"
MINT = "/_/oidc/mint-token"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "message", "errors"}


# --- issuers and publishers -----------------------------------------------------------------
def make_issuer(provider: str, url: str | None = None, **fields: Any) -> TestIssuer:
    default = {
        "github": GITHUB_URL,
        "gitlab": GITLAB_URL,
        "google": GOOGLE_URL,
        "activestate": ACTIVESTATE_URL,
    }[provider]
    issuer = TestIssuer(url or default)
    issuer.register(provider, **fields)
    return issuer


def row(issuer: TestIssuer) -> TrustedIssuer:
    return TrustedIssuer.objects.get(url=issuer.url)


def github_publisher(
    issuer: TestIssuer, projects: tuple[str, ...] = ("widgets",), **fields: Any
) -> GitHubPublisher:
    values = {
        "repository_owner": "acme",
        "repository_name": "widgets",
        "workflow_filename": "release.yml",
        **fields,
    }
    publisher = GitHubPublisher.objects.create(issuer=row(issuer), **values)
    publisher.add_projects(list(projects))
    return publisher


def gitlab_publisher(
    issuer: TestIssuer, projects: tuple[str, ...] = ("widgets",), **fields: Any
) -> GitLabPublisher:
    values = {
        "namespace": "acme",
        "project": "widgets",
        "workflow_filepath": ".gitlab-ci.yml",
        **fields,
    }
    publisher = GitLabPublisher.objects.create(issuer=row(issuer), **values)
    publisher.add_projects(list(projects))
    return publisher


def google_publisher(
    issuer: TestIssuer, projects: tuple[str, ...] = ("widgets",), **fields: Any
) -> GooglePublisher:
    values = {"email": "release@acme-ci.iam.gserviceaccount.com", **fields}
    publisher = GooglePublisher.objects.create(issuer=row(issuer), **values)
    publisher.add_projects(list(projects))
    return publisher


def activestate_publisher(
    issuer: TestIssuer, projects: tuple[str, ...] = ("widgets",), **fields: Any
) -> ActiveStatePublisher:
    values = {
        "organization": "acme",
        "activestate_project_name": "widgets",
        "actor": "release-bot",
        "actor_id": "a1b2c3",
        **fields,
    }
    publisher = ActiveStatePublisher.objects.create(issuer=row(issuer), **values)
    publisher.add_projects(list(projects))
    return publisher


# --- requests -------------------------------------------------------------------------------
def post_mint(client: Any, token: Any, path: str = MINT, **extra: Any) -> Any:
    body = {"token": token, **extra}
    return client.post(path, data=json.dumps(body), content_type="application/json")


def without(claims: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k not in names}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_built_jwt(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT assembled by hand, for headers and signatures PyJWT refuses to produce."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


# --- assertions -----------------------------------------------------------------------------
def assert_minted(response: Any) -> str:
    """A successful exchange: 200 and PyPI's body. Returns the minted token."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert body["token"].startswith("pypi-")
    assert isinstance(body["expires"], int)
    assert 0 < body["expires"] - time.time() <= 900 + 2
    return body["token"]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """An error answer: the status, PyPI's envelope and an RFC 9457 problem document."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert PROBLEM_KEYS <= set(body), body
    assert body["status"] == status
    assert body["code"] == code
    assert body["message"] == "Token request failed"
    assert isinstance(body["errors"], list) and len(body["errors"]) == 1
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["description"] == body["detail"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["type"], str) and code in body["type"]
    return body


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """Refused and nothing minted or spent."""
    body = assert_problem(response, status, code)
    assert not IssuedToken.objects.exists()
    assert not UsedIdentityToken.objects.exists()
    return body


def last_failure() -> AuditEvent:
    return AuditEvent.objects.filter(kind=AuditEvent.Kind.EXCHANGE_FAILED).latest("id")
