"""Token verification beyond the hostile-token table (tests/security/test_hostile_tokens.py,
where every forged, mis-addressed, expired or malformed token is a row): what a genuine token
may do, and issuer keys the app must not trust or cannot use."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from trusted_publishing.models import GitHubPublisher, TrustedIssuer
from trusted_publishing.testing import TestIssuer

from .providers.support import assert_minted, assert_refused, post_mint, without


def refused(client: Any, token: str, status: int, code: str) -> dict[str, Any]:
    response = post_mint(client, token)
    body = assert_refused(response, status, code)
    assert token not in response.content.decode()  # never echo the token
    return body


@pytest.fixture
def claims(github_issuer: TestIssuer, github_publisher: GitHubPublisher) -> dict[str, Any]:
    return github_issuer.github_claims()


def test_the_untampered_token_mints(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    assert_minted(post_mint(client, github_issuer.sign(claims)))


# --- validity window ------------------------------------------------------------------------------
def test_expiry_within_the_leeway_is_tolerated(
    client: Any, github_issuer: TestIssuer, claims: dict
) -> None:
    now = int(time.time())
    late = {**claims, "iat": now - 300, "nbf": now - 300, "exp": now - 10}
    assert_minted(post_mint(client, github_issuer.sign(late)))


def test_nbf_is_optional(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    assert_minted(post_mint(client, github_issuer.sign(without(claims, "nbf"))))


# --- issuer keys ----------------------------------------------------------------------------------
def test_an_unusable_issuer_key_is_a_clean_refusal(client: Any, db: Any) -> None:
    # An operator's mistake (a P-256 key declared as ES512) must not turn every request for
    # that issuer into a server error.
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from trusted_publishing.models import KeySource

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "eck", "alg": "ES512"}
    TrustedIssuer.objects.create(
        url="https://ec.misconfigured.test",
        provider="github",
        key_source=KeySource.STATIC,
        static_jwks={"keys": [jwk]},
        algorithms=["ES512"],
    )

    def segment(data: bytes) -> str:
        return jwt.utils.base64url_encode(data).decode()

    now = int(time.time())
    payload = (
        f'{{"iss": "https://ec.misconfigured.test", "aud": "tests.example.internal", '
        f'"iat": {now}, "exp": {now + 300}}}'
    )
    token = ".".join(
        [
            segment(b'{"alg": "ES512", "kid": "eck"}'),
            segment(payload.encode()),
            segment(b"\x01" * 132),
        ]
    )
    response = refused(client, token, 422, "invalid-token")
    assert "cannot be used" in response["detail"]


# Keys too short to trust are refused even when a trusted issuer publishes them.
@pytest.mark.parametrize("key_size,expected", [(1024, 422), (2048, 200)])
def test_rsa_key_length_is_enforced(db: Any, mint: Any, key_size: int, expected: int) -> None:
    issuer = TestIssuer("https://weak-keys.test", key_size=key_size)
    issuer.register("github")
    publisher = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=issuer.url),
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
    )
    publisher.add_projects(["widgets"])

    response = mint(issuer.sign(issuer.github_claims()))

    assert response.status_code == expected, response.content
    if expected == 422:
        assert response.json()["code"] == "invalid-token"
