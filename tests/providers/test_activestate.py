"""ActiveState Platform claim rules through the mint endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.models import ActiveStatePublisher, IssuedToken
from trusted_publishing.testing import TestIssuer

from .support import (
    activestate_publisher,
    assert_fake_issuer_knows,
    assert_known_claims_partition,
    assert_minted,
    assert_problem,
    assert_refused,
    make_issuer,
    post_mint,
    without,
)


@pytest.fixture
def issuer(db: Any) -> TestIssuer:
    return make_issuer("activestate")


@pytest.fixture
def publisher(issuer: TestIssuer) -> ActiveStatePublisher:
    return activestate_publisher(issuer)


def test_valid_token_mints(
    client: Any, issuer: TestIssuer, publisher: ActiveStatePublisher
) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.activestate_claims())))
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == publisher.pk
    assert issued.subject == "acme/widgets"


def test_sub_may_carry_extra_components(
    client: Any, issuer: TestIssuer, publisher: ActiveStatePublisher
) -> None:
    claims = issuer.activestate_claims(sub="org:acme:project:widgets:build:1")
    assert_minted(post_mint(client, issuer.sign(claims)))


# Wrong values of the claims the rules compare are rows of the hostile-token table
# (tests/security/test_hostile_tokens.py, ids "activestate-...").


@pytest.mark.parametrize("claim", ["organization", "project", "actor_id", "sub", "builder"])
def test_missing_claim_is_refused(
    client: Any, issuer: TestIssuer, publisher: ActiveStatePublisher, claim: str
) -> None:
    claims = without(issuer.activestate_claims(), claim)
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert claim in body["detail"]


def test_same_token_twice_is_a_replay(
    client: Any, issuer: TestIssuer, publisher: ActiveStatePublisher
) -> None:
    token = issuer.sign(issuer.activestate_claims())
    assert_minted(post_mint(client, token))
    assert_problem(post_mint(client, token), 422, "invalid-reuse-token")
    assert IssuedToken.objects.count() == 1


# --- known claims (pinned, as Warehouse pins ``all_known_claims``) --------------------------
#: Every claim an ActiveState token carries (PyPI's list; no jti).
ALL_KNOWN_CLAIMS = frozenset(
    {
        *("iss", "aud", "exp", "iat", "nbf", "sub"),
        *("organization", "organization_id", "project", "project_id", "project_path"),
        *("project_visibility", "actor", "actor_id", "builder", "artifact_id", "ingredient"),
    }
)
#: Claims the rules look at (see tests/providers/support.py::checked_claims).
CHECKED_CLAIMS = frozenset(
    {
        *("iss", "aud", "exp", "iat", "nbf"),
        *("sub", "organization", "project", "actor_id", "builder"),
    }
)
#: Claims only copied into the token snapshot and the audit trail.
SNAPSHOT_CLAIMS = frozenset({"actor", "project_path"})
#: Claims this index deliberately ignores, each with its reason (also in
#: docs/providers/activestate.md).
IGNORED_CLAIMS = {
    "artifact_id": "the artifact being built changes with every build; it is not an identity",
    "ingredient": "PyPI compares it only when a publisher names one; publishers here have no "
    "ingredient",
    "organization_id": "the organisation is matched by name (organization, sub) and the actor by "
    "actor_id, as on PyPI",
    "project_id": "the project is matched by name (project, sub) and the actor by actor_id, as "
    "on PyPI",
    "project_visibility": "public or private does not change who may publish",
}


def test_every_known_claim_is_checked_stored_or_ignored() -> None:
    assert_known_claims_partition(
        "activestate", ALL_KNOWN_CLAIMS, CHECKED_CLAIMS, SNAPSHOT_CLAIMS, IGNORED_CLAIMS
    )


def test_the_fake_issuer_knows_the_same_claims() -> None:
    assert_fake_issuer_knows("activestate", ALL_KNOWN_CLAIMS)
