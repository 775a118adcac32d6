"""Minted upload tokens: strength, storage, what they are bound to, and how they stop working."""

from __future__ import annotations

import base64
import hashlib
import string
import time
from typing import Any

import pytest
from django.apps import apps
from django.db import connection

from trusted_publishing import exchange as exchange_module
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import UploadDenied
from trusted_publishing.exchange import revoke_token
from trusted_publishing.models import (
    GitHubPublisher,
    IssuedToken,
    PublisherProject,
    UsedIdentityToken,
)
from trusted_publishing.principal import PublisherPrincipal
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import assert_minted, post_mint

URLSAFE = set(string.ascii_letters + string.digits + "-_")


@pytest.fixture
def minted(client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher) -> str:
    return assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))


def mint_many(client: Any, issuer: TestIssuer, n: int, **extra: Any) -> list[str]:
    return [
        assert_minted(post_mint(client, issuer.sign(issuer.github_claims()), **extra))
        for _ in range(n)
    ]


# --- strength -------------------------------------------------------------------------------------
def test_tokens_carry_at_least_256_random_bits(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    tokens = mint_many(client, github_issuer, 25)
    randoms = [t.removeprefix("pypi-") for t in tokens]
    assert len(set(randoms)) == len(randoms)
    for random_part in randoms:
        assert set(random_part) <= URLSAFE
        # base64url: 6 bits a character; 43 characters decode to 32 bytes.
        assert len(random_part) * 6 >= 256
        assert len(base64.urlsafe_b64decode(random_part + "=" * (-len(random_part) % 4))) >= 32
    # Every base64url symbol position varies across tokens (no constant padding or counter).
    for position in range(43):
        assert len({r[position] for r in randoms}) > 1


def test_token_prefix_setting(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    with override_tp_settings(TOKEN_PREFIX="acme_"):
        response = post_mint(client, github_issuer.sign(github_issuer.github_claims()))
        raw = response.json()["token"]
        assert raw.startswith("acme_")
        assert authenticate_upload_token(raw) is not None
        assert authenticate_upload_token("pypi-" + raw.removeprefix("acme_")) is None


def test_only_a_sha256_digest_is_stored(client: Any, minted: str) -> None:
    issued = IssuedToken.objects.get()
    assert issued.digest == hashlib.sha256(minted.encode()).hexdigest()
    secret = minted.removeprefix("pypi-")
    tables = [m._meta.db_table for m in apps.get_app_config("trusted_publishing").get_models()]
    assert len(tables) >= 10
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for values in cursor.fetchall():
                for value in values:
                    assert secret not in str(value), f"token stored in {table}"


# --- bindings -------------------------------------------------------------------------------------
def test_token_is_bound_to_publisher_projects_expiry_and_claims(
    client: Any, github_issuer: TestIssuer
) -> None:
    from .providers.support import github_publisher

    publisher = github_publisher(github_issuer, projects=("widgets", "gizmos"), environment="pypi")
    claims = github_issuer.github_claims(environment="pypi", run_id="555")
    response = post_mint(client, github_issuer.sign(claims), features=["single-use-token"])
    raw = assert_minted(response)
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == publisher.pk
    assert issued.projects == ["gizmos", "widgets"]
    assert issued.single_use is True
    assert issued.features == ["single-use-token"]
    assert int(issued.expires_at.timestamp()) == response.json()["expires"]
    assert issued.issuer_url == github_issuer.url
    assert issued.run_id == "555"
    for claim in ("repository", "ref", "sha", "workflow_ref", "job_workflow_ref", "environment"):
        assert issued.claims[claim] == claims[claim], claim
    assert issued.claims["run_id"] == "555"
    principal = authenticate_upload_token(raw)
    assert principal is not None
    assert isinstance(principal.publisher, GitHubPublisher)
    assert principal.publisher.pk == publisher.pk
    assert principal.projects == ["gizmos", "widgets"]
    assert principal.claims["sha"] == claims["sha"]
    assert principal.may_upload_to("Widgets") and not principal.may_upload_to("other")


@pytest.mark.parametrize("lifetime", [900, 3600, 21600])
def test_token_lifetime_setting(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher, lifetime: int
) -> None:
    with override_tp_settings(TOKEN_LIFETIME=lifetime):
        response = post_mint(client, github_issuer.sign(github_issuer.github_claims()))
    expires = response.json()["expires"]
    assert lifetime - 5 <= expires - time.time() <= lifetime + 1
    issued = IssuedToken.objects.get()
    assert abs((issued.expires_at - issued.created_at).total_seconds() - lifetime) < 1


# --- stopping an issued token ---------------------------------------------------------------------
def _principal(raw: str) -> PublisherPrincipal:
    principal = authenticate_upload_token(raw)
    assert principal is not None  # also warms the token cache
    return principal


def test_upload_is_authorised_while_nothing_changed(minted: str) -> None:
    principal = authorize_upload(_principal(minted), "Widgets")
    assert principal.token_id == IssuedToken.objects.get().pk
    assert IssuedToken.objects.get().upload_count == 1


def test_deleting_the_publisher_stops_its_tokens(
    minted: str, github_publisher: GitHubPublisher
) -> None:
    principal = _principal(minted)
    github_publisher.delete()
    assert authenticate_upload_token(minted) is None
    with pytest.raises(UploadDenied, match="deleted"):
        authorize_upload(principal, "widgets")


def test_disabling_the_publisher_stops_its_tokens(
    minted: str, github_publisher: GitHubPublisher
) -> None:
    principal = _principal(minted)
    github_publisher.enabled = False
    github_publisher.save()  # revokes its live tokens (receivers.py)
    assert authenticate_upload_token(minted) is None
    with pytest.raises(UploadDenied, match="the token was revoked"):
        authorize_upload(principal, "widgets")


def test_disabling_through_a_queryset_update_stops_uploads_too(
    minted: str, github_publisher: GitHubPublisher
) -> None:
    principal = _principal(minted)
    # No signals, so nothing is revoked: the upload check itself re-reads the publisher row.
    GitHubPublisher.objects.filter(pk=github_publisher.pk).update(enabled=False)
    with pytest.raises(UploadDenied, match="disabled"):
        authorize_upload(principal, "widgets")


def test_removing_the_project_from_the_publisher_stops_uploads_to_it(
    minted: str, github_publisher: GitHubPublisher
) -> None:
    github_publisher.add_projects(["gizmos"])
    principal = _principal(minted)
    PublisherProject.objects.filter(publisher=github_publisher, name="widgets").delete()
    with pytest.raises(UploadDenied, match="the token was revoked"):
        authorize_upload(principal, "widgets")


def test_revoking_stops_the_token(minted: str) -> None:
    principal = _principal(minted)
    issued = IssuedToken.objects.get()
    assert revoke_token(issued, actor="ops@example.com", reason="leaked in a log") is True
    assert revoke_token(issued, actor="ops@example.com", reason="again") is False
    assert authenticate_upload_token(minted) is None
    with pytest.raises(UploadDenied, match="revoked"):
        authorize_upload(principal, "widgets")
    issued.refresh_from_db()
    assert issued.state == "revoked" and issued.revoked_reason == "leaked in a log"


def test_expiry_is_enforced_at_upload_even_with_a_cached_lookup(minted: str) -> None:
    principal = _principal(minted)
    past = IssuedToken.objects.get().created_at
    IssuedToken.objects.update(expires_at=past)  # no signal: the cache still says "live"
    with pytest.raises(UploadDenied, match="expired"):
        authorize_upload(principal, "widgets")


def test_token_may_not_upload_to_other_projects(minted: str) -> None:
    with pytest.raises(UploadDenied, match="may not upload"):
        authorize_upload(_principal(minted), "gadgets")


# --- single use -----------------------------------------------------------------------------------
def test_single_use_token_authorises_exactly_one_upload(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    raw = mint_many(client, github_issuer, 1, features=["single-use-token"])[0]
    first, second = _principal(raw), _principal(raw)
    authorize_upload(first, "widgets")
    with pytest.raises(UploadDenied, match="single-use"):
        authorize_upload(second, "widgets")
    assert authenticate_upload_token(raw) is None
    issued = IssuedToken.objects.get()
    assert issued.upload_count == 1 and issued.state == "used"


def test_multi_use_token_authorises_many_uploads(minted: str) -> None:
    principal = _principal(minted)
    for _ in range(3):
        authorize_upload(principal, "widgets")
    assert IssuedToken.objects.get().upload_count == 3


# --- first-use binding of immutable ids when two exchanges race -----------------------------------


def _bind_concurrently(monkeypatch: pytest.MonkeyPatch, owner_id: str, repo_id: str) -> None:
    """Let find_publisher match the unbound row, then bind it as a concurrent exchange would."""
    original = exchange_module.find_publisher

    def racing(issuer: Any, claims: dict, packages: Any = None) -> Any:
        found = original(issuer, claims, packages)
        GitHubPublisher.objects.filter(pk=found[0].pk).update(
            repository_owner_id=owner_id, repository_id=repo_id
        )
        return found

    monkeypatch.setattr(exchange_module, "find_publisher", racing)


def test_concurrent_binding_to_other_ids_is_refused(
    github_issuer: TestIssuer,
    github_publisher: GitHubPublisher,
    mint: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bind_concurrently(monkeypatch, owner_id="9999", repo_id="8888")

    response = mint(github_issuer.sign(github_issuer.github_claims(owner_id="1001")))

    assert response.status_code == 422
    assert response.json()["code"] == "invalid-publisher"
    publisher = GitHubPublisher.objects.get(pk=github_publisher.pk)
    assert (publisher.repository_owner_id, publisher.repository_id) == ("9999", "8888")
    assert not IssuedToken.objects.exists()
    assert not UsedIdentityToken.objects.exists()


def test_concurrent_binding_to_the_same_ids_still_mints(
    github_issuer: TestIssuer,
    github_publisher: GitHubPublisher,
    mint: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bind_concurrently(monkeypatch, owner_id="1001", repo_id="2002")

    response = mint(github_issuer.sign(github_issuer.github_claims()))

    assert response.status_code == 200, response.content
    assert IssuedToken.objects.count() == 1
