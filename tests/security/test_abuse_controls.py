"""Abuse controls of the unauthenticated exchange endpoints: rate limit and request size caps."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from django.core.cache.backends.base import CacheKeyWarning

from tests.plugins.secrets_guard import count
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import AuditEvent, IssuedToken

from .conftest import post_json

MINT = "/_/oidc/mint-token"
LEGACY_MINT = "/_/oidc/github/mint-token"
BURN = "/_/oidc/burn-token"


def _assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert 1 <= int(response["Retry-After"]) <= 60
    body = response.json()
    assert body["code"] == "rate-limited"
    assert body["errors"] == [{"code": "rate-limited", "description": body["detail"]}]
    assert body["message"] == "Token request failed"


@pytest.mark.django_db
def test_rate_limit_answers_429_with_retry_after_and_the_problem_envelope(client: Any) -> None:
    with override_tp_settings(EXCHANGE_RATE_LIMIT="5/min"):
        for _ in range(5):
            assert post_json(client, MINT, {"token": "x.y.z"}).status_code == 422
        _assert_rate_limited(post_json(client, MINT, {"token": "x.y.z"}))
        # Every exchange endpoint shares the budget: the legacy route and burn are limited too.
        _assert_rate_limited(post_json(client, LEGACY_MINT, {"token": "x.y.z"}))
        _assert_rate_limited(post_json(client, BURN, {"token": "pypi-x"}))
        # Another client is unaffected.
        other = post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR="192.0.2.7")
        assert other.status_code == 422
    count("hostile tokens tried", 9)


@pytest.mark.django_db
def test_rate_limit_cannot_be_dodged_with_forwarded_headers(client: Any) -> None:
    """A client must not pick a fresh identity per request by inventing X-Forwarded-For."""
    with override_tp_settings(EXCHANGE_RATE_LIMIT="5/min"):
        statuses = [
            post_json(
                client, MINT, {"token": "x.y.z"}, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"
            ).status_code
            for n in range(10)
        ]
    count("hostile tokens tried", 10)
    assert statuses == [422] * 5 + [429] * 5


@pytest.mark.django_db
def test_forwarded_header_never_reaches_the_cache_key(client: Any) -> None:
    """Client-chosen header bytes in a cache key break memcached (>250 bytes, control chars)."""
    with (
        override_tp_settings(EXCHANGE_RATE_LIMIT="5/min"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", CacheKeyWarning)
        response = post_json(client, MINT, {"token": "x.y.z"}, HTTP_X_FORWARDED_FOR="1 \x00" * 3000)
    assert response.status_code == 422


@pytest.mark.django_db
def test_rate_limit_disabled_with_none(client: Any) -> None:
    with override_tp_settings(EXCHANGE_RATE_LIMIT=None):
        statuses = {post_json(client, MINT, {"token": "x.y.z"}).status_code for _ in range(30)}
    count("hostile tokens tried", 30)
    assert statuses == {422}


@pytest.mark.django_db
@pytest.mark.parametrize("path", [MINT, LEGACY_MINT])
def test_request_body_over_the_cap_is_413(client: Any, path: str) -> None:
    with override_tp_settings(MAX_REQUEST_BYTES=1024):
        body = json.dumps({"token": "a" * 2000})
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code == 413
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "payload-too-large"
        # Just under the cap the request is parsed (and refused for its content).
        small = client.post(
            path, data=json.dumps({"token": "a" * 900}), content_type="application/json"
        )
        assert small.status_code == 422
        assert small.json()["code"] == "invalid-payload"
    assert not IssuedToken.objects.exists()


@pytest.mark.django_db
def test_lying_content_length_is_refused_without_reading(client: Any) -> None:
    with override_tp_settings(MAX_REQUEST_BYTES=1024):
        too_big = client.generic(
            "POST", MINT, b"{}", content_type="application/json", CONTENT_LENGTH="99999999"
        )
        not_a_number = client.generic(
            "POST", MINT, b"{}", content_type="application/json", CONTENT_LENGTH="12abc"
        )
    assert too_big.status_code == 413
    assert not_a_number.status_code in {400, 422}
    assert not_a_number["Content-Type"] == "application/problem+json"


@pytest.mark.django_db
def test_oversized_burn_request_is_still_202_and_burns_nothing(client: Any) -> None:
    with override_tp_settings(MAX_REQUEST_BYTES=1024):
        response = post_json(client, BURN, {"token": "pypi-" + "a" * 5000})
    assert response.status_code == 202
    assert not AuditEvent.objects.exists()


# --- review round 2: address keying, audit flooding, retention --------------------------------
@pytest.mark.django_db
def test_rotating_through_an_ipv6_64_is_still_limited(client: Any) -> None:
    with override_tp_settings(EXCHANGE_RATE_LIMIT="5/min"):
        for n in range(5):
            address = f"2001:db8:1:2::{n + 1:x}"
            assert (
                post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR=address).status_code == 422
            )
        # A fresh address in the same /64: same bucket.
        _assert_rate_limited(
            post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR="2001:db8:1:2:dead:beef::9")
        )
        # Another /64 has its own budget.
        other = post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR="2001:db8:1:3::1")
        assert other.status_code == 422
    count("hostile tokens tried", 7)


@pytest.mark.django_db
def test_the_ipv6_prefix_is_configurable(client: Any) -> None:
    with override_tp_settings(EXCHANGE_RATE_LIMIT="2/min", EXCHANGE_RATE_LIMIT_IPV6_PREFIX=128):
        for n in range(4):
            address = f"2001:db8::{n + 1:x}"
            assert (
                post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR=address).status_code == 422
            )


@pytest.mark.django_db
def test_clients_without_an_address_do_not_share_one_bucket(client: Any) -> None:
    with override_tp_settings(EXCHANGE_RATE_LIMIT="2/min"):
        for _ in range(5):
            response = post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR="")
            assert response.status_code == 422, response.content
        # Clients with an address are still limited.
        for _ in range(2):
            post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR="192.0.2.50")
        _assert_rate_limited(post_json(client, MINT, {"token": "x.y.z"}, REMOTE_ADDR="192.0.2.50"))


@pytest.mark.django_db
def test_a_flood_of_unverified_refusals_is_sampled_not_written_row_by_row(client: Any) -> None:
    with override_tp_settings(EXCHANGE_RATE_LIMIT=None):
        for _ in range(120):
            assert client.post(MINT, data=b"not json", content_type="text/plain").status_code == 422
    count("fuzzed requests", 120)
    rows = list(AuditEvent.objects.filter(kind="exchange.failed").order_by("pk"))
    # The 1st, 10th and 100th of the minute (a minute boundary during the loop adds a few).
    assert 3 <= len(rows) <= 6, [r.message for r in rows]
    assert {r.error_code for r in rows} == {"invalid-payload"}
    assert any(r.message.startswith("[100th unverified refusal") for r in rows)


@pytest.mark.django_db
def test_refusals_of_verified_tokens_are_always_written(
    client: Any, github_issuer: Any, github_publisher: Any
) -> None:
    claims = github_issuer.github_claims(repository="acme/other")
    with override_tp_settings(EXCHANGE_RATE_LIMIT=None):
        for n in range(15):
            jwt = github_issuer.sign({**claims, "jti": f"j{n}"})
            assert post_json(client, MINT, {"token": jwt}).status_code == 422
    assert AuditEvent.objects.filter(error_code="invalid-publisher").count() == 15
