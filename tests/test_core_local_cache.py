"""The process-local cache in front of the shared cache (``LOCAL_CACHE_TTL``).

A change made in this process takes effect at once; a change made in another process (simulated
here as that process would leave things: the row updated and the shared cache entry dropped, but
this process's receivers never called) takes effect within ``LOCAL_CACHE_TTL``. Tokens are never
trusted from it for an upload: authorisation re-checks the database. The cross-process version of
these tests runs against gunicorn in tests/concurrency/test_local_cache.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from trusted_publishing import cache as tp_cache
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import UploadDenied
from trusted_publishing.exchange import hash_token, revoke_token
from trusted_publishing.models import GitHubPublisher, IssuedToken, TrustedIssuer
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import assert_minted, assert_problem, post_mint


class Clock:
    """Stands in for cache.py's monotonic clock, so expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(tp_cache, "monotonic", fake)
    return fake


@pytest.fixture
def exchange(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> Callable[[], Any]:
    def _exchange() -> Any:
        return post_mint(client, github_issuer.sign(github_issuer.github_claims()))

    return _exchange


def _issuer_reads(queries: list[dict[str, Any]]) -> int:
    table = TrustedIssuer._meta.db_table
    return sum(1 for q in queries if table in q["sql"] and q["sql"].startswith("SELECT"))


def _disable_elsewhere(url: str) -> None:
    """What another worker's admin save leaves behind for this process: the row changed and the
    shared entry dropped, but nothing removed this process's local copy."""
    TrustedIssuer.objects.filter(url=url).update(enabled=False)
    tp_cache.get_cache().delete(tp_cache.issuer_key(url))


def test_a_known_issuer_is_read_once_per_ttl(exchange: Callable[[], Any], clock: Clock) -> None:
    assert_minted(exchange())
    with CaptureQueriesContext(connection) as warm:
        assert_minted(exchange())
    assert _issuer_reads(warm.captured_queries) == 0
    # Even with the shared cache emptied, the local copy answers until it expires...
    tp_cache.get_cache().clear()
    with CaptureQueriesContext(connection) as local:
        assert_minted(exchange())
    assert _issuer_reads(local.captured_queries) == 0
    # ...and then the issuer is read again.
    clock.now += 5.1
    with CaptureQueriesContext(connection) as expired:
        assert_minted(exchange())
    assert _issuer_reads(expired.captured_queries) == 1


def test_an_issuer_disabled_in_this_process_stops_minting_at_once(
    exchange: Callable[[], Any], github_issuer: TestIssuer, clock: Clock
) -> None:
    assert_minted(exchange())
    row = TrustedIssuer.objects.get(url=github_issuer.url)
    row.enabled = False
    row.save()
    assert_problem(exchange(), 403, "not-enabled")


def test_an_issuer_disabled_elsewhere_stops_minting_within_the_ttl(
    exchange: Callable[[], Any], github_issuer: TestIssuer, clock: Clock
) -> None:
    assert_minted(exchange())
    _disable_elsewhere(github_issuer.url)
    clock.now += 4.9
    assert_minted(exchange())  # the bounded window the setting documents
    clock.now += 0.2
    assert_problem(exchange(), 403, "not-enabled")


def test_ttl_zero_turns_the_local_copy_off(
    exchange: Callable[[], Any], github_issuer: TestIssuer, clock: Clock
) -> None:
    with override_tp_settings(LOCAL_CACHE_TTL=0):
        assert_minted(exchange())
        assert len(tp_cache.local) == 0
        _disable_elsewhere(github_issuer.url)
        assert_problem(exchange(), 403, "not-enabled")


def test_unknown_issuers_are_not_kept_locally(client: Any, github_issuer: TestIssuer) -> None:
    for n in range(20):
        stranger = TestIssuer(f"https://stranger-{n}.example")
        response = post_mint(client, stranger.sign(stranger.github_claims()))
        assert_problem(response, 422, "unknown-issuer")
    assert len(tp_cache.local) == 0


def test_the_local_copy_is_bounded_and_expires(clock: Clock) -> None:
    local = tp_cache.LocalCache(max_entries=3)
    for n in range(5):
        local.set(f"k{n}", n)
    assert len(local) == 3
    assert [local.get(f"k{n}") for n in range(5)] == [None, None, 2, 3, 4]
    clock.now += 5.1
    assert local.get("k4") is None


def test_readers_get_their_own_copy(minted_token: str) -> None:
    first = authenticate_upload_token(minted_token)
    assert first is not None
    first.publisher.repository_owner = "mallory"
    first.projects.append("other")
    second = authenticate_upload_token(minted_token)
    assert second is not None
    assert second.publisher.repository_owner == "acme"
    assert second.projects == ["widgets"]


@pytest.fixture
def minted_token(exchange: Callable[[], Any]) -> str:
    return assert_minted(exchange())


def test_a_token_revoked_elsewhere_cannot_upload_even_while_held_locally(
    minted_token: str, clock: Clock
) -> None:
    principal = authenticate_upload_token(minted_token)
    assert principal is not None
    authorize_upload(principal, "widgets")  # the token's lookup is now held locally
    # Revoked by another process: the row changes, the shared entry goes.
    digest = hash_token(minted_token)
    token = IssuedToken.objects.get(digest=digest)
    IssuedToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)
    tp_cache.get_cache().delete(tp_cache.token_key(digest))

    held = authenticate_upload_token(minted_token)
    assert held is not None  # the documented window for authentication alone
    with pytest.raises(UploadDenied, match="revoked"):
        authorize_upload(held, "widgets")
    # The refusal dropped the local copy: the next attempt is not even authenticated.
    assert authenticate_upload_token(minted_token) is None


def test_a_token_revoked_in_this_process_is_forgotten_at_once(minted_token: str) -> None:
    principal = authenticate_upload_token(minted_token)
    assert principal is not None
    authorize_upload(principal, "widgets")
    revoke_token(IssuedToken.objects.get(), actor="ops", reason="test")
    assert authenticate_upload_token(minted_token) is None


def test_a_warm_upload_reads_no_cache_and_one_statement_pair(minted_token: str) -> None:
    principal = authenticate_upload_token(minted_token)
    assert principal is not None
    authorize_upload(principal, "widgets")
    tp_cache.get_cache().clear()  # only the local copy can answer now
    with CaptureQueriesContext(connection) as captured:
        again = authenticate_upload_token(minted_token)
        assert again is not None
        authorize_upload(again, "widgets")
    statements = [q["sql"].split()[0] for q in captured.captured_queries]
    assert statements == ["UPDATE", "INSERT"]


def test_new_settings_or_caches_start_from_empty(minted_token: str) -> None:
    assert authenticate_upload_token(minted_token) is not None
    assert len(tp_cache.local) > 0
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "other",
            }
        }
    ):
        assert len(tp_cache.local) == 0


@pytest.mark.django_db  # run_checks() includes Django's database checks
@pytest.mark.parametrize("value", [-1, 61, "5", None, True, float("nan")])
def test_out_of_range_values_are_a_system_check_error(value: Any) -> None:
    with override_tp_settings(LOCAL_CACHE_TTL=value):
        ids = {m.id for m in run_checks()}
    assert "trusted_publishing.E016" in ids


@pytest.mark.django_db
@pytest.mark.parametrize("value", [0, 0.5, 5, 60])
def test_in_range_values_pass_the_checks(value: Any) -> None:
    with override_tp_settings(LOCAL_CACHE_TTL=value):
        ids = {m.id for m in run_checks()}
    assert "trusted_publishing.E016" not in ids


def test_threads_share_one_consistent_copy() -> None:
    import threading

    local = tp_cache.LocalCache(max_entries=50)
    errors: list[BaseException] = []

    def hammer(n: int) -> None:
        try:
            for i in itertools.islice(itertools.count(), 2000):
                key = f"k{(n * 7 + i) % 120}"
                local.set(key, {"n": i})
                value = local.get(key)
                assert value is None or isinstance(value, dict)
                if i % 3 == 0:
                    local.discard(key)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(local) <= 50


def test_editing_an_issuers_url_forgets_the_old_one(
    exchange: Callable[[], Any], github_issuer: TestIssuer
) -> None:
    assert_minted(exchange())  # the old URL is now cached, locally and in the shared cache
    row = TrustedIssuer.objects.get(url=github_issuer.url)
    row.url = "https://token.actions.renamed.test"
    row.save()
    # Tokens still naming the old URL are from an issuer this index no longer trusts.
    assert tp_cache.get_cache().get(tp_cache.issuer_key(github_issuer.url)) is None
    assert_problem(exchange(), 422, "unknown-issuer")
