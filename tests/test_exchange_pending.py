"""Pending publishers: the first exchange creates the project through the host integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from trusted_publishing import signals
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import UploadDenied
from trusted_publishing.integration import HostIntegration
from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    IssuedToken,
    Publisher,
    UsedIdentityToken,
)
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import (
    assert_minted,
    assert_refused,
    github_publisher,
    post_mint,
)


class RecordingIntegration(HostIntegration):
    """A host whose projects are rows in a real table (auth Group "project:<name>"), so the
    tests see whether project creation is rolled back with the exchange."""

    calls: ClassVar[list[tuple[str, int]]] = []
    refuse: ClassVar[dict[str, str]] = {}

    def project_exists(self, name: str) -> bool:
        return Group.objects.filter(name=f"project:{name}").exists()

    def create_project(self, name: str, publisher: Publisher) -> None:
        type(self).calls.append((name, publisher.pk))
        if name in self.refuse:
            raise ValueError(self.refuse[name])
        Group.objects.create(name=f"project:{name}")


INTEGRATION = f"{__name__}.RecordingIntegration"


@pytest.fixture(autouse=True)
def _integration() -> Any:
    RecordingIntegration.calls = []
    RecordingIntegration.refuse = {}
    with override_tp_settings(HOST_INTEGRATION=INTEGRATION):
        yield


@pytest.fixture
def pending(github_issuer: TestIssuer) -> GitHubPublisher:
    until = timezone.now() + timedelta(days=30)
    return github_publisher(github_issuer, projects=("widgets",), pending_expires_at=until)


def projects_created() -> list[str]:
    return sorted(Group.objects.values_list("name", flat=True))


def assert_nothing_written(publisher: GitHubPublisher) -> None:
    assert not IssuedToken.objects.exists()
    assert not UsedIdentityToken.objects.exists()
    assert projects_created() == []
    publisher.refresh_from_db()
    assert publisher.is_pending
    assert not AuditEvent.objects.filter(kind="publisher.reified").exists()


def test_first_exchange_creates_the_project_and_reifies_the_publisher(
    client: Any,
    github_issuer: TestIssuer,
    pending: GitHubPublisher,
    django_capture_on_commit_callbacks: Any,
) -> None:
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    signals.publisher_reified.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    finally:
        signals.publisher_reified.disconnect(receiver)

    assert RecordingIntegration.calls == [("widgets", pending.pk)]
    assert projects_created() == ["project:widgets"]
    pending.refresh_from_db()
    assert not pending.is_pending
    event = AuditEvent.objects.get(kind="publisher.reified")
    assert event.publisher_id == pending.pk and event.projects == ["widgets"]
    assert event.outcome == "success"
    assert len(received) == 1
    assert received[0]["publisher"].pk == pending.pk
    assert received[0]["projects"] == ["widgets"]
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == pending.pk and issued.projects == ["widgets"]

    # From now on it is an ordinary publisher: no second project creation.
    assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    assert len(RecordingIntegration.calls) == 1
    assert AuditEvent.objects.filter(kind="publisher.reified").count() == 1


def test_expired_pending_publisher(
    client: Any, github_issuer: TestIssuer, pending: GitHubPublisher
) -> None:
    Publisher.objects.filter(pk=pending.pk).update(
        pending_expires_at=timezone.now() - timedelta(seconds=1)
    )
    token = github_issuer.sign(github_issuer.github_claims())
    body = assert_refused(post_mint(client, token), 422, "invalid-pending-publisher")
    assert "expired" in body["detail"]
    assert RecordingIntegration.calls == []
    assert_nothing_written(pending)


def test_project_already_exists(
    client: Any, github_issuer: TestIssuer, pending: GitHubPublisher
) -> None:
    Group.objects.create(name="project:widgets")
    token = github_issuer.sign(github_issuer.github_claims())
    body = assert_refused(post_mint(client, token), 422, "invalid-pending-publisher")
    assert "already exists" in body["detail"]
    assert RecordingIntegration.calls == []
    assert not IssuedToken.objects.exists()
    pending.refresh_from_db()
    assert pending.is_pending


def test_host_refusing_the_project_name_writes_nothing(
    client: Any, github_issuer: TestIssuer
) -> None:
    until = timezone.now() + timedelta(days=1)
    publisher = github_publisher(
        github_issuer, projects=("widgets", "widgets-tools"), pending_expires_at=until
    )
    RecordingIntegration.refuse = {"widgets-tools": "the name 'widgets-tools' is prohibited"}
    token = github_issuer.sign(github_issuer.github_claims())
    body = assert_refused(post_mint(client, token), 422, "invalid-pending-publisher")
    assert "prohibited" in body["detail"]
    # "widgets" was created before the refusal and rolled back with the whole exchange.
    assert [name for name, _ in RecordingIntegration.calls] == ["widgets", "widgets-tools"]
    assert_nothing_written(publisher)
    event = AuditEvent.objects.get(kind="exchange.failed")
    assert event.error_code == "invalid-pending-publisher"

    # The operator fixes the cause: the same identity token now works.
    RecordingIntegration.refuse = {}
    assert_minted(post_mint(client, token))
    assert projects_created() == ["project:widgets", "project:widgets-tools"]


def test_pending_publishers_tokens_cannot_upload_before_reification(
    client: Any, github_issuer: TestIssuer, pending: GitHubPublisher
) -> None:
    raw = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    principal = authenticate_upload_token(raw)
    assert principal is not None
    authorize_upload(principal, "widgets")  # reified: allowed
    Publisher.objects.filter(pk=pending.pk).update(
        pending_expires_at=timezone.now() + timedelta(days=1)
    )
    with pytest.raises(UploadDenied):
        authorize_upload(principal, "widgets")


def test_default_integration_treats_ordinary_publishers_projects_as_existing(
    client: Any, github_issuer: TestIssuer
) -> None:
    github_publisher(github_issuer, repository_name="other", projects=("widgets",))
    until = timezone.now() + timedelta(days=1)
    pending = github_publisher(github_issuer, projects=("widgets",), pending_expires_at=until)
    with override_tp_settings(HOST_INTEGRATION="trusted_publishing.integration.HostIntegration"):
        token = github_issuer.sign(github_issuer.github_claims())
        assert_refused(post_mint(client, token), 422, "invalid-pending-publisher")
    pending.refresh_from_db()
    assert pending.is_pending
