"""ActiveState Platform claim rules through the mint endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.models import ActiveStatePublisher, IssuedToken
from trusted_publishing.testing import TestIssuer

from .support import (
    activestate_publisher,
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


WRONG_VALUES = {
    "organization": {"organization": "evil", "sub": "org:evil:project:widgets"},
    "project": {"project": "gadgets", "sub": "org:acme:project:gadgets"},
    "actor_id": {"actor_id": "zzz999"},
    "sub: another organization": {"sub": "org:evil:project:widgets"},
    "sub: another project": {"sub": "org:acme:project:gadgets"},
    "sub: too short": {"sub": "org:acme"},
    "builder": {"builder": "some-other-builder"},
}


@pytest.mark.parametrize("overrides", WRONG_VALUES.values(), ids=WRONG_VALUES.keys())
def test_wrong_claim_value_is_refused(
    client: Any, issuer: TestIssuer, publisher: ActiveStatePublisher, overrides: dict[str, Any]
) -> None:
    claims = {**issuer.activestate_claims(), **overrides}
    assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")


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
