"""Forged, mis-addressed, expired and replayed identity tokens are refused with the right code."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest

from trusted_publishing.models import GitHubPublisher, IssuedToken, TrustedIssuer
from trusted_publishing.testing import TestIssuer

from .providers.support import (
    assert_minted,
    assert_problem,
    assert_refused,
    b64url,
    hand_built_jwt,
    post_mint,
    without,
)

AUDIENCE = "tests.example.internal"


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


# --- algorithm attacks ------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(client: Any, github_issuer: TestIssuer, claims: dict, alg: str) -> None:
    token = hand_built_jwt({"alg": alg, "typ": "JWT", "kid": github_issuer.kid}, claims)
    assert token.endswith(".")
    refused(client, token, 422, "invalid-token")


def _hs256_with_public_pem(issuer: TestIssuer, claims: dict[str, Any]) -> str:
    # PyJWT refuses to use a PEM as an HMAC secret, so sign by hand like an attacker would.
    unsigned = hand_built_jwt({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}, claims)[:-1]
    mac = hmac.new(issuer.public_pem(), unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(mac)}"


def test_hs256_signed_with_the_public_key(
    client: Any, github_issuer: TestIssuer, claims: dict
) -> None:
    refused(client, _hs256_with_public_pem(github_issuer, claims), 422, "invalid-token")


def test_hs256_refused_even_if_an_operator_allows_it(
    client: Any, github_issuer: TestIssuer, claims: dict
) -> None:
    issuer = TrustedIssuer.objects.get(url=github_issuer.url)
    issuer.algorithms = ["RS256", "HS256"]
    issuer.save()
    # The RSA key is bound to RS256: it is never used as an HMAC secret.
    refused(client, _hs256_with_public_pem(github_issuer, claims), 422, "invalid-token")


@pytest.mark.parametrize("alg", ["RS512", "PS256", "RS384"])
def test_other_rsa_algorithm_when_rs256_is_pinned(
    client: Any, github_issuer: TestIssuer, claims: dict, alg: str
) -> None:
    token = jwt.encode(
        claims, github_issuer.private_key, algorithm=alg, headers={"kid": github_issuer.kid}
    )
    body = refused(client, token, 422, "invalid-token")
    assert "algorithm" in body["detail"]


# --- key selection ----------------------------------------------------------------------------
def test_unknown_kid(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    refused(client, github_issuer.sign(claims, kid="no-such-key"), 422, "invalid-token")


def test_missing_kid(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    token = jwt.encode(claims, github_issuer.private_key, algorithm="RS256")
    assert "kid" not in jwt.get_unverified_header(token)
    refused(client, token, 422, "invalid-token")


@pytest.mark.parametrize("kid", ["' OR 1=1 --", "", "k" * 300, "a\nb"])
def test_hostile_kid(client: Any, github_issuer: TestIssuer, claims: dict, kid: str) -> None:
    refused(client, github_issuer.sign(claims, kid=kid), 422, "invalid-token")


def test_other_key_with_the_right_kid(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    attacker = TestIssuer(github_issuer.url, kid=github_issuer.kid)
    body = refused(client, attacker.sign(claims), 422, "invalid-token")
    assert "signature" in body["detail"]


def test_embedded_jwk_and_jku_headers_are_ignored(
    client: Any, github_issuer: TestIssuer, claims: dict
) -> None:
    attacker = TestIssuer(github_issuer.url, kid=github_issuer.kid)
    headers = {"jwk": attacker.public_jwk(), "jku": "https://evil.test/jwks", "x5u": "https://e"}
    refused(client, attacker.sign(claims, headers=headers), 422, "invalid-token")


def test_tampered_payload(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    head, _, sig = github_issuer.sign(claims).split(".")
    forged_body = hand_built_jwt({}, {**claims, "repository_owner_id": "1"}).split(".")[1]
    refused(client, f"{head}.{forged_body}.{sig}", 422, "invalid-token")


# --- issuers ----------------------------------------------------------------------------------
def test_unregistered_issuer(client: Any, claims: dict) -> None:
    stranger = TestIssuer("https://token.actions.evil.test")
    forged = {**claims, "iss": stranger.url}
    body = refused(client, stranger.sign(forged), 422, "unknown-issuer")
    assert stranger.url in body["detail"]


@pytest.mark.parametrize("iss", ["https://token.actions.test/", "HTTPS://TOKEN.ACTIONS.TEST"])
def test_issuer_must_match_exactly(
    client: Any, github_issuer: TestIssuer, claims: dict, iss: str
) -> None:
    refused(client, github_issuer.sign({**claims, "iss": iss}), 422, "unknown-issuer")


def test_disabled_issuer(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    issuer = TrustedIssuer.objects.get(url=github_issuer.url)
    issuer.enabled = False
    issuer.save()
    refused(client, github_issuer.sign(claims), 403, "not-enabled")


def test_missing_iss_is_malformed(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    refused(client, github_issuer.sign(without(claims, "iss")), 422, "invalid-payload")


# --- audience ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "aud",
    [
        "pypi",
        "tests.example.internal.evil",
        "TESTS.EXAMPLE.INTERNAL",
        ["pypi", AUDIENCE],
        [AUDIENCE],
        [],
    ],
    ids=["pypi", "suffix", "case", "list-containing-ours", "single-item-list", "empty-list"],
)
def test_audience_must_be_exactly_ours(
    client: Any, github_issuer: TestIssuer, claims: dict, aud: Any
) -> None:
    refused(client, github_issuer.sign({**claims, "aud": aud}), 422, "invalid-token")


# --- validity window --------------------------------------------------------------------------
def test_expired(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    now = int(time.time())
    old = {**claims, "iat": now - 900, "nbf": now - 900, "exp": now - 60}
    body = refused(client, github_issuer.sign(old), 422, "invalid-token")
    assert "expired" in body["detail"]


def test_expiry_within_the_leeway_is_tolerated(
    client: Any, github_issuer: TestIssuer, claims: dict
) -> None:
    now = int(time.time())
    late = {**claims, "iat": now - 300, "nbf": now - 300, "exp": now - 10}
    assert_minted(post_mint(client, github_issuer.sign(late)))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(client: Any, github_issuer: TestIssuer, claims: dict, claim: str) -> None:
    future = {**claims, claim: int(time.time()) + 600}
    body = refused(client, github_issuer.sign(future), 422, "invalid-token")
    assert "not yet valid" in body["detail"]


@pytest.mark.parametrize("claim", ["exp", "iat", "aud"])
def test_missing_standard_claim(
    client: Any, github_issuer: TestIssuer, claims: dict, claim: str
) -> None:
    body = refused(client, github_issuer.sign(without(claims, claim)), 422, "invalid-token")
    assert claim in body["detail"]


def test_nbf_is_optional(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    assert_minted(post_mint(client, github_issuer.sign(without(claims, "nbf"))))


# --- replay -----------------------------------------------------------------------------------
def test_replayed_token(client: Any, github_issuer: TestIssuer, claims: dict) -> None:
    token = github_issuer.sign(claims)
    assert_minted(post_mint(client, token))
    assert_problem(post_mint(client, token), 422, "invalid-reuse-token")
    assert IssuedToken.objects.count() == 1


def test_replayed_jti_in_a_re_signed_token(
    client: Any, github_issuer: TestIssuer, claims: dict
) -> None:
    assert_minted(post_mint(client, github_issuer.sign(claims)))
    # Same jti, different bytes (a second token carrying a copied jti): still a replay.
    again = github_issuer.sign({**claims, "iat": claims["iat"] - 1})
    assert_problem(post_mint(client, again), 422, "invalid-reuse-token")


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
