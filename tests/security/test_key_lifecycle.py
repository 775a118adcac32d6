"""Issuer key lifecycle and outages, against a real HTTP identity provider on 127.0.0.1.

The app runs in-process (Django test client); the IdP is a threaded HTTP server whose requests
are counted, so "at most one fetch" is measured where it matters — at the issuer.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import override_settings

from tests.plugins.secrets_guard import count, record_secret
from tests.support.idp import FakeIdP
from trusted_publishing import cache as tp_cache
from trusted_publishing.conf import override_tp_settings, tp_settings
from trusted_publishing.keys import NEW_KEY_INTERVAL, UnknownKey, get_signing_key
from trusted_publishing.models import AuditEvent, IssuedToken, TrustedIssuer

from .conftest import post_json

MINT = "/_/oidc/mint-token"
FETCH_TIMEOUT = 0.5
#: Worst case for one failed fetch: discovery + JWKS, each bounded by the whole-transfer limit.
OUTAGE_BOUND = 4 * FETCH_TIMEOUT + 1.5


@pytest.fixture
def fast_keys() -> Iterator[None]:
    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT, JWKS_REFRESH_COOLDOWN=60):
        yield


def _mint(client: Any, token: str) -> Any:
    return post_json(client, MINT, {"token": token})


def _token(idp: FakeIdP, **kwargs: Any) -> str:
    return idp.issuer.sign(idp.issuer.github_claims(), **kwargs)


# --- rotation ----------------------------------------------------------------------------------
@pytest.mark.usefixtures("idp_publisher")
def test_key_rotation_is_picked_up_with_exactly_one_fetch(client: Any, idp: FakeIdP) -> None:
    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT, JWKS_REFRESH_COOLDOWN=1):
        first = _mint(client, _token(idp))
        assert first.status_code == 200, first.json()
        assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)
        for _ in range(3):  # warm keys: no further fetches
            assert _mint(client, _token(idp)).status_code == 200
        assert idp.jwks_fetches == 1

        # The provider rotates: a new signing key, the old one still published for a while.
        old_jwk, old_key = idp.issuer.public_jwk(), idp.issuer.private_key
        idp.issuer.rotate()
        idp.extra_keys = [old_jwk]
        # Inside the cooldown of the last fetch an unknown kid is refused without a fetch ...
        early = _mint(client, _token(idp))
        assert early.status_code == 422
        assert early.json()["code"] == "invalid-token"
        assert idp.jwks_fetches == 1
        time.sleep(1.1)
        # ... after it, the first token with the new kid triggers exactly one fetch.
        rotated = _mint(client, _token(idp))
        assert rotated.status_code == 200, rotated.json()
        assert idp.jwks_fetches == 2
        for _ in range(3):
            assert _mint(client, _token(idp)).status_code == 200
        # Tokens signed with the previous key still verify while it is published ...
        old_token = jwt.encode(
            idp.issuer.github_claims(), old_key, algorithm="RS256", headers={"kid": old_jwk["kid"]}
        )
        record_secret(old_token, "jwt")
        assert _mint(client, old_token).status_code == 200
        # ... but the new key cannot pass itself off as the old one.
        forged = idp.issuer.sign(idp.issuer.github_claims(), kid=old_jwk["kid"])
        assert _mint(client, forged).json()["code"] == "invalid-token"
        assert idp.jwks_fetches == 2


class _Clock:
    """``time.time`` frozen, and moved forward only on demand or by ``time.sleep`` (the cache's
    expiry and the keys' age follow it; real time spent on a loaded machine must not leak into
    the steps)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        start = time.time()
        real_sleep = time.sleep

        def sleep(seconds: float) -> None:
            real_sleep(seconds)
            self.offset += seconds

        monkeypatch.setattr(time, "time", lambda: start + self.offset)
        monkeypatch.setattr(time, "sleep", sleep)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Clock]:
    """A fake clock and a local-memory cache of its own, whose expiry the fake clock drives
    (the gate of a Redis or database cache expires in the server's real time)."""
    caches_conf = {
        **settings.CACHES,
        "tp-clock": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tp-clock",
        },
    }
    with override_settings(CACHES=caches_conf), override_tp_settings(CACHE_ALIAS="tp-clock"):
        tp_cache.get_cache().clear()  # local-memory caches outlive the override: start empty
        yield _Clock(monkeypatch)
        tp_cache.get_cache().clear()


def test_a_new_key_is_accepted_within_10_s_of_the_last_fetch_whatever_the_cooldown(
    idp: FakeIdP, idp_issuer: TrustedIssuer, clock: _Clock
) -> None:
    """Finding 9: with the default JWKS_REFRESH_COOLDOWN (60 s), a key published right after a
    fetch used to be refused for a minute; now the next fetch is allowed 10 s after the last."""
    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT):
        assert tp_settings.JWKS_REFRESH_COOLDOWN == 60  # the default
        assert get_signing_key(idp_issuer, idp.issuer.kid).key_id == idp.issuer.kid
        assert idp.jwks_fetches == 1
        idp.rotate(keep_old=True)  # published right after our fetch: the worst case
        new_kid = idp.issuer.kid
        for step in (0.0, 5.0, 4.9):  # up to 9.9 s after the fetch: not yet, and no fetch
            clock.advance(step)
            with pytest.raises(UnknownKey):
                get_signing_key(idp_issuer, new_kid)
        assert idp.jwks_fetches == 1
        clock.advance(0.2)  # 10.1 s after the fetch
        assert get_signing_key(idp_issuer, new_kid).key_id == new_kid
        assert (idp.discovery_fetches, idp.jwks_fetches) == (2, 2)


def test_an_unknown_kid_flood_costs_at_most_one_fetch_per_10_s(
    idp: FakeIdP, idp_issuer: TrustedIssuer, clock: _Clock
) -> None:
    """40 s of (fake) time, 50 random kids a second: one fetch at the start, then exactly one
    per 10 s interval, never two within 10 s (default cooldown)."""
    fetched_at: list[float] = []
    tried = 0
    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT):
        for _ in range(400):  # 0.1 s steps
            before = idp.jwks_fetches
            for _ in range(5):
                with pytest.raises(UnknownKey):
                    get_signing_key(idp_issuer, uuid.uuid4().hex)
                tried += 1
            if idp.jwks_fetches != before:
                fetched_at.append(clock.offset)
            clock.advance(0.1)
    count("unknown-kid key lookups", tried)
    gaps = [b - a for a, b in zip(fetched_at, fetched_at[1:], strict=False)]
    assert len(fetched_at) == 4, fetched_at  # t = 0, ~10, ~20, ~30
    # Fetch times are known to one 0.1 s step (real time passes too).
    assert all(gap >= NEW_KEY_INTERVAL - 0.15 for gap in gaps), gaps
    assert idp.discovery_fetches == idp.jwks_fetches == 4


def test_a_gate_that_expires_early_does_not_allow_an_early_fetch(
    idp: FakeIdP, idp_issuer: TrustedIssuer, clock: _Clock
) -> None:
    """The database cache and memcached expire on whole seconds, and any cache may evict: the
    gate can vanish before 10 s. The shared keyset's fetch time still holds the next fetch back
    until 10 s after the last one ended (found against gunicorn + the database cache)."""
    cache = tp_cache.get_cache()
    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT):
        get_signing_key(idp_issuer, idp.issuer.kid)
        first_fetch_ended = cache.get(_cache_key("set", idp.url))["fetched_at"]
        idp.rotate(keep_old=True)
        new_kid = idp.issuer.kid
        # Evicted after 2 s: still refused without a fetch, and the gate is set again.
        clock.advance(2)
        cache.delete(_cache_key("gate", idp.url))
        with pytest.raises(UnknownKey):
            get_signing_key(idp_issuer, new_kid)
        assert idp.jwks_fetches == 1
        assert cache.get(_cache_key("gate", idp.url)) == "done"
        # Expired 0.6 s early: the worker that wins the gate waits the rest out, then fetches.
        clock.advance(7.4)
        cache.delete(_cache_key("gate", idp.url))
        started = time.monotonic()
        assert get_signing_key(idp_issuer, new_kid).key_id == new_kid
        waited = time.monotonic() - started
        assert idp.jwks_fetches == 2
        assert 0.3 <= waited <= 1.5, waited
        second_fetch_ended = cache.get(_cache_key("set", idp.url))["fetched_at"]
        assert second_fetch_ended - first_fetch_ended >= NEW_KEY_INTERVAL


def test_a_shorter_cooldown_still_applies(idp: FakeIdP, idp_issuer: TrustedIssuer) -> None:
    """The 10 s cap never lengthens a cooldown a deployment set shorter."""
    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT, JWKS_REFRESH_COOLDOWN=1):
        get_signing_key(idp_issuer, idp.issuer.kid)
        idp.rotate(keep_old=True)
        time.sleep(1.1)
        assert get_signing_key(idp_issuer, idp.issuer.kid).key_id == idp.issuer.kid
    assert idp.jwks_fetches == 2


def test_a_failed_fetch_still_waits_the_full_cooldown(
    idp: FakeIdP, idp_issuer: TrustedIssuer, clock: _Clock
) -> None:
    """After a failure the issuer is left alone for JWKS_REFRESH_COOLDOWN (60 s), not 10 s."""
    from trusted_publishing.errors import IssuerUnavailable

    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT):
        idp.mode = "500"
        with pytest.raises(IssuerUnavailable):
            get_signing_key(idp_issuer, idp.issuer.kid)
        idp.mode = "ok"
        idp.reset_counts()
        clock.advance(30)
        with pytest.raises(IssuerUnavailable):
            get_signing_key(idp_issuer, idp.issuer.kid)
        assert idp.total_requests == 0
        clock.advance(30.5)
        assert get_signing_key(idp_issuer, idp.issuer.kid).key_id == idp.issuer.kid
        assert idp.jwks_fetches == 1


# --- refetch storms ----------------------------------------------------------------------------
@pytest.mark.usefixtures("idp_publisher", "fast_keys")
def test_flood_of_random_kids_causes_no_refetch_within_the_cooldown(
    client: Any, idp: FakeIdP
) -> None:
    assert _mint(client, _token(idp)).status_code == 200
    assert idp.jwks_fetches == 1
    started = time.monotonic()
    flood = 200
    for _ in range(flood):
        response = _mint(client, _token(idp, kid=uuid.uuid4().hex))
        assert response.status_code == 422
        assert response.json()["code"] == "invalid-token"
    elapsed = time.monotonic() - started
    count("hostile tokens tried", flood)
    # Normally well under NEW_KEY_INTERVAL (10 s): no refetch at all. On a very slow machine,
    # at most one more per elapsed interval.
    allowed = 1 + int(elapsed // NEW_KEY_INTERVAL)
    assert idp.discovery_fetches == idp.jwks_fetches <= allowed, elapsed
    assert IssuedToken.objects.count() == 1


@pytest.mark.usefixtures("fast_keys")
def test_concurrent_unknown_kids_share_one_fetch(idp: FakeIdP, idp_issuer: TrustedIssuer) -> None:
    """32 threads with random kids against a cold cache and a slowish issuer: one fetch."""
    issuer = TrustedIssuer.objects.get(url=idp.url)
    assert issuer is not None
    idp.mode = "slow"
    idp.slow_seconds = 0.2
    outcomes: list[str] = []
    barrier = threading.Barrier(32)

    def worker() -> None:
        barrier.wait()
        try:
            get_signing_key(issuer, uuid.uuid4().hex)
            outcomes.append("key")
        except UnknownKey:
            outcomes.append("unknown")
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    count("concurrent requests", 32)
    count("hostile tokens tried", 32)
    assert outcomes == ["unknown"] * 32
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


def test_unknown_kids_refetch_at_most_once_per_cooldown(
    idp: FakeIdP, idp_issuer: TrustedIssuer
) -> None:
    issuer = TrustedIssuer.objects.get(url=idp.url)
    assert issuer is not None
    tried = 0
    with override_tp_settings(JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT, JWKS_REFRESH_COOLDOWN=1):
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            with pytest.raises(UnknownKey):
                get_signing_key(issuer, uuid.uuid4().hex)
            tried += 1
    count("unknown-kid key lookups", tried)
    assert tried > 100
    # 2.5 s with a 1 s cooldown: the first fetch plus at most one per elapsed cooldown.
    assert 2 <= idp.jwks_fetches <= 3
    assert idp.discovery_fetches == idp.jwks_fetches


# --- outages -----------------------------------------------------------------------------------
OUTAGES = [
    "down",
    "slow",
    "drip",
    "500",
    "html",
    "huge",
    "huge-unsized",
    "redirect",
    "wrong-issuer",
    "jwks-link-local",
    "jwks-file",
    "500-jwks",
    "empty-keys",
    "not-object",
]


@pytest.mark.usefixtures("idp_publisher", "fast_keys")
@pytest.mark.parametrize("mode", OUTAGES)
def test_issuer_outage_is_a_clean_retryable_503(client: Any, idp: FakeIdP, mode: str) -> None:
    idp.mode = mode
    idp.slow_seconds = 3.0
    token = _token(idp)
    started = time.monotonic()
    response = _mint(client, token)
    elapsed = time.monotonic() - started
    count("outage cases")

    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) >= 1
    body = response.json()
    assert body["code"] == "issuer-unavailable"
    assert body["errors"][0]["code"] == "issuer-unavailable"
    assert token not in response.content.decode()
    assert elapsed < OUTAGE_BOUND, f"{mode}: took {elapsed:.1f} s"
    # Nothing minted; the failure is in the audit trail.
    assert not IssuedToken.objects.exists()
    failed = AuditEvent.objects.get(kind=AuditEvent.Kind.EXCHANGE_FAILED)
    assert failed.error_code == "issuer-unavailable"
    if mode == "redirect":
        assert idp.requests["/elsewhere/.well-known/openid-configuration"] == 0
    if mode in {"jwks-link-local", "jwks-file", "wrong-issuer"}:
        assert idp.jwks_fetches == 0

    # The failed fetch starts the cooldown: a retry storm does not hammer the issuer.
    before = idp.total_requests
    for _ in range(5):
        again = _mint(client, _token(idp))
        assert again.status_code == 503
        assert again.json()["code"] == "issuer-unavailable"
    assert idp.total_requests == before


@pytest.mark.usefixtures("fast_keys", "db")
def test_unreachable_issuer_is_a_clean_503(client: Any) -> None:
    """Connection refused: an issuer registered on a port nobody listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from trusted_publishing.testing import TestIssuer

    issuer = TestIssuer(f"http://127.0.0.1:{port}")
    issuer.register("github", static=False)
    started = time.monotonic()
    response = _mint(client, issuer.sign(issuer.github_claims()))
    count("outage cases")
    assert response.status_code == 503
    assert response.json()["code"] == "issuer-unavailable"
    assert time.monotonic() - started < OUTAGE_BOUND


@pytest.mark.usefixtures("idp_publisher", "fast_keys")
@pytest.mark.parametrize("mode", ["down", "slow", "500", "html", "wrong-issuer", "empty-keys"])
def test_cached_keys_keep_valid_tokens_working_during_an_outage(
    client: Any, idp: FakeIdP, mode: str
) -> None:
    assert _mint(client, _token(idp)).status_code == 200
    idp.mode = mode
    idp.slow_seconds = 3.0
    idp.reset_counts()
    started = time.monotonic()
    for _ in range(3):
        response = _mint(client, _token(idp))
        assert response.status_code == 200, response.json()
    count("outage cases")
    assert idp.total_requests == 0  # warm keys: the outage is not even noticed
    assert time.monotonic() - started < 2


@pytest.mark.usefixtures("idp_publisher")
@pytest.mark.parametrize("mode", ["down", "500", "slow", "empty-keys"])
def test_stale_keys_survive_a_failed_refresh(client: Any, idp: FakeIdP, mode: str) -> None:
    """Past JWKS_MAX_AGE the app refreshes; when that fails it keeps the keys it has."""
    with override_tp_settings(
        JWKS_FETCH_TIMEOUT=FETCH_TIMEOUT, JWKS_REFRESH_COOLDOWN=60, JWKS_MAX_AGE=0
    ):
        assert _mint(client, _token(idp)).status_code == 200
        # The periodic refresh is due now: the keys are an hour old and the gate has expired.
        cache = tp_cache.get_cache()
        keyset = cache.get(_cache_key("set", idp.url))
        cache.set(_cache_key("set", idp.url), {**keyset, "fetched_at": time.time() - 3600}, None)
        cache.delete(_cache_key("gate", idp.url))
        idp.mode = mode
        idp.slow_seconds = 3.0
        idp.reset_counts()
        started = time.monotonic()
        for _ in range(4):
            response = _mint(client, _token(idp))
            assert response.status_code == 200, response.json()
        count("outage cases")
        assert time.monotonic() - started < OUTAGE_BOUND
        # One refresh attempt (discovery), then the cooldown holds further ones back.
        assert idp.discovery_fetches == 1


def _cache_key(kind: str, url: str) -> str:
    from trusted_publishing.keys import _cache_key as keys_cache_key

    return keys_cache_key(kind, url)
