"""Replay protection: each identity token is exchanged once, and only a successful exchange
spends it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client

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
    assert used.key == replay_key(github_issuer.url, claims, token)
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
