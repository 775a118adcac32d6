"""First-use binding of immutable ids when two exchanges race for an unbound publisher."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing import exchange as exchange_module
from trusted_publishing.models import GitHubPublisher, IssuedToken, UsedIdentityToken
from trusted_publishing.testing import TestIssuer


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
