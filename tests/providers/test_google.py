"""Google Cloud service-account token rules through the mint endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.exchange import replay_key
from trusted_publishing.models import GooglePublisher, IssuedToken, UsedIdentityToken
from trusted_publishing.testing import TestIssuer

from .support import (
    assert_fake_issuer_knows,
    assert_known_claims_partition,
    assert_minted,
    assert_problem,
    assert_refused,
    google_publisher,
    make_issuer,
    post_mint,
    without,
)

SA = "release@acme-ci.iam.gserviceaccount.com"
SA_ID = "111122223333444455556"


@pytest.fixture
def issuer(db: Any) -> TestIssuer:
    return make_issuer("google")


@pytest.fixture
def publisher(issuer: TestIssuer) -> GooglePublisher:
    return google_publisher(issuer)


def test_valid_token_mints(client: Any, issuer: TestIssuer, publisher: GooglePublisher) -> None:
    claims = issuer.google_claims()
    assert "jti" not in claims
    assert_minted(post_mint(client, issuer.sign(claims)))
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == publisher.pk
    assert issued.subject == SA
    assert issued.claims["email"] == SA


def test_email_compares_case_insensitively(
    client: Any, issuer: TestIssuer, publisher: GooglePublisher
) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.google_claims(email=SA.upper()))))


# Wrong values of the claims the rules compare are rows of the hostile-token table
# (tests/security/test_hostile_tokens.py, ids "google-...").


@pytest.mark.parametrize("claim", ["email", "email_verified", "sub"])
def test_missing_claim_is_refused(
    client: Any, issuer: TestIssuer, publisher: GooglePublisher, claim: str
) -> None:
    claims = without(issuer.google_claims(), claim)
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert {"email_verified": "verified"}.get(claim, claim) in body["detail"]


def test_configured_sub_must_match(client: Any, issuer: TestIssuer) -> None:
    google_publisher(issuer, sub=SA_ID)
    # The account was deleted and re-created with the same e-mail: a new unique id.
    claims = issuer.google_claims(sub="999999999999999999999")
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert "sub" in body["detail"]
    assert_minted(post_mint(client, issuer.sign(issuer.google_claims(sub=SA_ID))))


def test_unconfigured_sub_accepts_any_account_id(
    client: Any, issuer: TestIssuer, publisher: GooglePublisher
) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.google_claims(sub="42"))))


def test_sub_constrained_publisher_wins(client: Any, issuer: TestIssuer) -> None:
    google_publisher(issuer, projects=("any-account",))
    pinned = google_publisher(issuer, projects=("widgets",), sub=SA_ID)
    assert_minted(post_mint(client, issuer.sign(issuer.google_claims())))
    assert IssuedToken.objects.get().publisher_id == pinned.pk


def test_replay_is_keyed_by_the_token_hash(
    client: Any, issuer: TestIssuer, publisher: GooglePublisher
) -> None:
    token = issuer.sign(issuer.google_claims())
    assert_minted(post_mint(client, token))
    assert_problem(post_mint(client, token), 422, "invalid-reuse-token")
    assert IssuedToken.objects.count() == 1
    used = UsedIdentityToken.objects.get()
    assert used.key == replay_key(issuer.url, {}, token.rsplit(".", 1)[0])
    assert token not in used.key
    # A fresh token of the same account (no jti to tell them apart) is not a replay.
    later = issuer.google_claims(iat=issuer.google_claims()["iat"] - 1)
    assert_minted(post_mint(client, issuer.sign(later)))


# --- known claims (pinned, as Warehouse pins ``all_known_claims``) --------------------------
#: Every claim a Google service account's ID token carries (PyPI's list; no jti).
ALL_KNOWN_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "sub", "azp", "email", "email_verified", "google"}
)
#: Claims the rules look at (see tests/providers/support.py::checked_claims).
CHECKED_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "email", "email_verified", "sub"})
#: Claims only copied into the token snapshot and the audit trail.
SNAPSHOT_CLAIMS = frozenset({"azp"})
#: Claims this index deliberately ignores, each with its reason (also in docs/providers/google.md).
IGNORED_CLAIMS = {
    "google": "Compute Engine details of format=full tokens; the service account (email, sub) "
    "is the identity",
}


def test_every_known_claim_is_checked_stored_or_ignored() -> None:
    assert_known_claims_partition(
        "google", ALL_KNOWN_CLAIMS, CHECKED_CLAIMS, SNAPSHOT_CLAIMS, IGNORED_CLAIMS
    )


def test_the_fake_issuer_knows_the_same_claims() -> None:
    assert_fake_issuer_knows("google", ALL_KNOWN_CLAIMS)
