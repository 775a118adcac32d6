"""Shared fixtures. Identity tokens are signed by TestIssuer keys made here (no network)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection

from trusted_publishing.models import GitHubPublisher
from trusted_publishing.testing import TestIssuer

GITHUB_ISSUER_URL = "https://token.actions.test"

pytest_plugins = ["tests.plugins.secrets_guard"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        if "/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _require_postgres(request: pytest.FixtureRequest) -> None:
    """A test marked `postgres` fails (never skips) in CI's PostgreSQL run if it isn't there."""
    if request.node.get_closest_marker("postgres") is None:
        return
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        if os.environ.get("TP_REQUIRE_POSTGRES"):
            pytest.fail(f"this test needs PostgreSQL but DATABASES uses {engine}")
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    for alias in caches:
        caches[alias].clear()


@pytest.fixture
def github_issuer(db: Any) -> TestIssuer:
    issuer = TestIssuer(GITHUB_ISSUER_URL)
    issuer.register("github")
    return issuer


@pytest.fixture
def github_publisher(github_issuer: TestIssuer) -> GitHubPublisher:
    from trusted_publishing.models import TrustedIssuer

    publisher = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=github_issuer.url),
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
    )
    publisher.add_projects(["widgets"])
    return publisher


@pytest.fixture
def mint(client: Any) -> Callable[..., Any]:
    """POST a mint request like the real clients do; returns the response."""

    def _mint(token: Any, path: str = "/_/oidc/mint-token", **extra: Any) -> Any:
        body = {"token": token, **extra}
        return client.post(path, data=json.dumps(body), content_type="application/json")

    return _mint


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
