"""Keys too short to trust are refused even when a trusted issuer publishes them."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.models import GitHubPublisher, TrustedIssuer
from trusted_publishing.testing import TestIssuer


@pytest.mark.parametrize("key_size,expected", [(1024, 422), (2048, 200)])
def test_rsa_key_length_is_enforced(db: Any, mint: Any, key_size: int, expected: int) -> None:
    issuer = TestIssuer("https://weak-keys.test", key_size=key_size)
    issuer.register("github")
    publisher = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=issuer.url),
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
    )
    publisher.add_projects(["widgets"])

    response = mint(issuer.sign(issuer.github_claims()))

    assert response.status_code == expected, response.content
    if expected == 422:
        assert response.json()["code"] == "invalid-token"
