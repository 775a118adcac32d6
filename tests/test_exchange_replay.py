"""Replay protection: each identity token is exchanged once, and only a successful exchange
spends it."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from tests.plugins.secrets_guard import record_secret
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.exchange import replay_key
from trusted_publishing.models import GitHubPublisher, IssuedToken, UsedIdentityToken
from trusted_publishing.testing import TestIssuer

from .providers.support import (
    assert_minted,
    assert_problem,
    assert_refused,
    github_publisher,
    gitlab_publisher,
    make_issuer,
    post_mint,
)


def test_same_token_twice(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    token = github_issuer.sign(github_issuer.github_claims())
    assert_minted(post_mint(client, token))
    body = assert_problem(post_mint(client, token), 422, "invalid-reuse-token")
    assert token not in str(body)
    assert IssuedToken.objects.count() == 1
    assert UsedIdentityToken.objects.count() == 1
    # The legacy route shares the replay store.
    assert_problem(
        post_mint(client, token, path="/_/oidc/github/mint-token"), 422, "invalid-reuse-token"
    )


@pytest.mark.parametrize("leeway", [30, 60])
def test_replay_record_outlives_the_token(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher, leeway: int
) -> None:
    claims = github_issuer.github_claims()
    token = github_issuer.sign(claims)
    with override_tp_settings(JWT_LEEWAY=leeway):
        assert_minted(post_mint(client, token))
    used = UsedIdentityToken.objects.get()
    assert used.expires_at == datetime.fromtimestamp(claims["exp"] + leeway + 5, tz=UTC)
    assert used.issuer_url == github_issuer.url
    assert used.key == replay_key(github_issuer.url, claims, token.rsplit(".", 1)[0])
    assert claims["jti"] not in used.key


def test_failed_exchange_does_not_spend_the_token(client: Any, github_issuer: TestIssuer) -> None:
    token = github_issuer.sign(github_issuer.github_claims())
    assert_refused(post_mint(client, token), 422, "invalid-publisher")
    # The operator registers the missing publisher; the job retries with the same token.
    github_publisher(github_issuer)
    assert_minted(post_mint(client, token))


def test_same_jti_from_another_issuer_is_not_a_replay(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    gitlab = make_issuer("gitlab")
    gitlab_publisher(gitlab)
    claims = github_issuer.github_claims()
    assert_minted(post_mint(client, github_issuer.sign(claims)))
    assert_minted(post_mint(client, gitlab.sign(gitlab.gitlab_claims(jti=claims["jti"]))))
    assert UsedIdentityToken.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_exchanges_of_one_token_mint_once(github_issuer: TestIssuer) -> None:
    github_publisher(github_issuer)
    token = github_issuer.sign(github_issuer.github_claims())
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def attempt() -> None:
        try:
            barrier.wait()
            statuses.append(post_mint(Client(), token).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [422] * 5
    assert IssuedToken.objects.count() == 1


def _es256_google_issuer(url: str) -> tuple[TestIssuer, Any]:
    """A trusted issuer that signs with ES256 and issues tokens without ``jti`` (Google's
    claims), as an OIDC provider with EC keys could."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from trusted_publishing.models import GooglePublisher, KeySource, TrustedIssuer

    shape = TestIssuer(url)  # for its claim helpers only
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "ec-1", "alg": "ES256", "use": "sig"})
    row = TrustedIssuer.objects.create(
        url=url,
        provider="google",
        key_source=KeySource.STATIC,
        static_jwks={"keys": [jwk]},
        algorithms=["ES256"],
    )
    publisher = GooglePublisher.objects.create(
        issuer=row, email="release@acme-ci.iam.gserviceaccount.com"
    )
    publisher.add_projects(["widgets"])
    return shape, key


def test_a_re_encoded_ecdsa_signature_is_still_a_replay(client: Any, db: Any) -> None:
    # ECDSA signatures are malleable: (r, n - s) verifies as well as (r, s). For an issuer
    # without jti the replay key must not depend on the signature's bytes.
    import jwt as pyjwt

    shape, key = _es256_google_issuer("https://ec.issuer.test")
    claims = shape.google_claims()
    token = pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": "ec-1"})
    record_secret(token, "jwt")
    signed_part, signature = token.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    twin_raw = r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")
    twin = f"{signed_part}.{base64.urlsafe_b64encode(twin_raw).rstrip(b'=').decode()}"
    record_secret(twin, "jwt")
    assert twin != token

    assert_minted(post_mint(client, token))
    assert_problem(post_mint(client, twin), 422, "invalid-reuse-token")
    assert IssuedToken.objects.count() == 1


#: The order of the P-256 group (FIPS 186-4, D.1.2.3).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_replayed_jti_in_a_re_signed_token(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    claims = github_issuer.github_claims()
    assert_minted(post_mint(client, github_issuer.sign(claims)))
    # Same jti, different bytes (a second token carrying a copied jti): still a replay.
    again = github_issuer.sign({**claims, "iat": claims["iat"] - 1})
    assert_problem(post_mint(client, again), 422, "invalid-reuse-token")
