"""Taking upload rights away is final (receivers.py): disabling a publisher or removing a project
from it revokes the affected live tokens, so re-enabling or re-adding brings none back."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.errors import UploadDenied
from trusted_publishing.models import AuditEvent, GitHubPublisher, IssuedToken, PublisherProject
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import assert_minted, post_mint


def _minted(client: Any, issuer: TestIssuer) -> str:
    return assert_minted(
        post_mint(client, issuer.sign(issuer.github_claims()), features=["multi-use-token"])
    )


def _uploads(raw: str, project: str = "widgets") -> bool:
    principal = authenticate_upload_token(raw)
    if principal is None:
        return False
    try:
        authorize_upload(principal, project)
    except UploadDenied:
        return False
    return True


def test_disable_then_enable_does_not_revive_a_token(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    raw = _minted(client, github_issuer)
    assert _uploads(raw)
    github_publisher.enabled = False
    github_publisher.save()
    github_publisher.enabled = True
    github_publisher.save()

    assert not _uploads(raw)
    token = IssuedToken.objects.get()
    assert token.state == "revoked" and token.revoked_reason == "the publisher was disabled"
    assert AuditEvent.objects.filter(kind="token.revoked", token=token).count() == 1
    # The publisher itself works again: a new token uploads.
    assert _uploads(_minted(client, github_issuer))


@pytest.mark.parametrize("readd", [False, True])
def test_removing_a_project_revokes_the_tokens_that_cover_it(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher, readd: bool
) -> None:
    github_publisher.add_projects(["gadgets"])
    both = _minted(client, github_issuer)
    github_publisher.projects.get(name="widgets").delete()
    PublisherProject.objects.create(publisher=github_publisher, name="other")
    only_other = _minted(client, github_issuer)
    if readd:
        github_publisher.add_projects(["widgets"])

    # The token that covered the removed project is dead, for its other projects too.
    assert not _uploads(both, "widgets")
    assert not _uploads(both, "gadgets")
    assert IssuedToken.objects.get(projects=["gadgets", "widgets"]).state == "revoked"
    # A token minted later, without that project, is untouched.
    assert _uploads(only_other, "other")


def test_deleting_a_publisher_takes_its_tokens_with_it(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    raw = _minted(client, github_issuer)
    github_publisher.delete()
    assert authenticate_upload_token(raw) is None
    assert not IssuedToken.objects.exists()
