"""Fixtures of the security suite: a real local identity provider with fault knobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.idp import FakeIdP
from trusted_publishing.models import GitHubPublisher, TrustedIssuer


@pytest.fixture(scope="module")
def idp_server() -> Iterator[FakeIdP]:
    with FakeIdP() as server:
        yield server


@pytest.fixture
def idp(idp_server: FakeIdP) -> Iterator[FakeIdP]:
    """The module's IdP, behaving and with zeroed counters at the start of each test."""
    idp_server.reset()
    yield idp_server
    idp_server.reset()


@pytest.fixture
def idp_issuer(idp: FakeIdP, db: Any) -> TrustedIssuer:
    """The IdP registered as a GitHub-style issuer whose keys come from OIDC discovery."""
    return idp.issuer.register("github", static=False)


@pytest.fixture
def idp_publisher(idp_issuer: TrustedIssuer) -> GitHubPublisher:
    publisher = GitHubPublisher.objects.create(
        issuer=idp_issuer,
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
    )
    publisher.add_projects(["widgets"])
    return publisher


def post_json(client: Any, path: str, body: Any, **extra: Any) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json", **extra)
