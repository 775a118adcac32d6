"""Shared helpers for the core and provider tests (issuers, publishers, assertions).

Plain functions rather than fixtures so the top-level tests/test_*.py modules can use them
too; each needs the database (call them from tests that use the ``db`` fixture).
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
from trusted_publishing.providers import RULES
from trusted_publishing.testing import KNOWN_CLAIM_PREFIXES, KNOWN_CLAIMS, TestIssuer
from trusted_publishing.verification import REQUIRED_CLAIMS, TIME_CLAIMS

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


# --- known claims ---------------------------------------------------------------------------
#: Verified in every exchange whatever the provider: ``iss`` (the issuer allowlist), ``aud``,
#: ``exp``, ``iat`` (required) and ``nbf`` (when present).
VERIFIED_FOR_EVERY_PROVIDER = frozenset(REQUIRED_CLAIMS) | frozenset(TIME_CLAIMS)


def checked_claims(provider: str) -> set[str]:
    """The claims a provider's rules look at: verified for every token, required, compared by
    a check, bound on first use, looked up by, and ``jti`` when it is the replay key."""
    rules = RULES[provider]
    checked = set(VERIFIED_FOR_EVERY_PROVIDER)
    checked |= set(rules.required_claims) | {name for name, _check in rules.checks}
    checked |= set(rules.bound_ids) | set(rules.lookup_claims)
    if rules.requires_jti:
        checked.add("jti")
    return checked


def snapshot_only_claims(provider: str) -> set[str]:
    """The claims only copied into the token snapshot and audit trail."""
    rules = RULES[provider]
    stored = set(rules.snapshot_claims) | ({rules.run_id_claim} if rules.run_id_claim else set())
    return stored - checked_claims(provider)


def assert_known_claims_partition(
    provider: str,
    all_known: frozenset[str],
    checked: frozenset[str],
    snapshot: frozenset[str],
    ignored: dict[str, str],
) -> None:
    """Every claim the provider's tokens carry is checked, only stored, or ignored with a reason,
    and the rules agree: a new claim in the rules or in ``all_known`` fails until someone
    decides which it is."""
    assert checked_claims(provider) == checked, "the rules check other claims than pinned"
    assert snapshot_only_claims(provider) == snapshot, "the snapshot differs from the pinned one"
    assert not checked & snapshot and not (checked | snapshot) & set(ignored)
    assert checked | snapshot | set(ignored) == all_known, (
        "unaccounted: "
        f"{sorted(all_known - checked - snapshot - set(ignored))}, "
        f"not known: {sorted((checked | snapshot | set(ignored)) - all_known)}"
    )
    for claim, reason in ignored.items():
        assert reason.strip() and "\n" not in reason and "|" not in reason, claim


def assert_fake_issuer_knows(provider: str, all_known: frozenset[str]) -> None:
    """TestIssuer accepts exactly these claims as keywords, and its tokens carry no others."""
    prefixes = {f"{prefix}*" for prefix in KNOWN_CLAIM_PREFIXES.get(provider, ())}
    assert KNOWN_CLAIMS[provider] | prefixes == all_known
    issuer = TestIssuer()
    helper = getattr(issuer, f"{provider}_claims")
    tokens = [helper()]
    if provider in ("github", "gitlab"):
        tokens.append(helper(environment="pypi"))
    for claims in tokens:
        assert set(claims) <= all_known, sorted(set(claims) - all_known)
