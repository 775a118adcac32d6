"""The ready-made ProjectModelIntegration (settings only, no code) and the upload-view helper
check_trusted_upload, on the example index's Project model."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import RequestFactory

from example_project.index.models import Project
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.integration import ProjectModelIntegration
from trusted_publishing.models import AuditEvent, GitHubPublisher, IssuedToken
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, check_trusted_upload

from .providers.support import assert_minted, post_mint

SETTINGS = {
    "HOST_INTEGRATION": "trusted_publishing.integration.ProjectModelIntegration",
    "PROJECT_MODEL": "index.Project",
    "PROJECT_LOOKUP_FIELD": "normalized_name",
    "PROJECT_CREATE_FIELD": "name",
    "PROJECT_ARCHIVED_FIELD": "archived",
}


@pytest.fixture
def configured() -> Any:
    with override_tp_settings(**SETTINGS):
        yield ProjectModelIntegration()


@pytest.mark.django_db
def test_settings_alone_make_the_host_model_the_registry(configured: Any) -> None:
    assert configured.knows_projects()
    assert not configured.project_exists("my-project")
    Project.objects.create(name="My_Project", created_by="alice")
    assert configured.project_exists("my-project")
    assert configured.project_exists("My.Project")  # normalised defensively
    configured.create_project("brand-new", publisher=None)  # type: ignore[arg-type]
    assert Project.objects.get(normalized_name="brand-new").name == "brand-new"
    with pytest.raises(ValueError, match="already exists"):
        configured.create_project("brand-new", publisher=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid project name"):
        configured.create_project("-bad-", publisher=None)  # type: ignore[arg-type]
    Project.objects.filter(normalized_name="my-project").update(archived=True)
    assert not configured.may_upload(None, "my-project")  # type: ignore[arg-type]
    assert configured.may_upload(None, "brand-new")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"PROJECT_MODEL": "index.Nope"}, "names no installed model"),
        ({"PROJECT_LOOKUP_FIELD": "slug"}, "PROJECT_LOOKUP_FIELD = 'slug' is not a field"),
        ({"PROJECT_ARCHIVED_FIELD": "frozen"}, "PROJECT_ARCHIVED_FIELD = 'frozen'"),
    ],
)
def test_a_misnamed_model_or_field_is_e022(overrides: dict[str, str], message: str) -> None:
    with override_tp_settings(**SETTINGS):
        assert "trusted_publishing.E022" not in {m.id for m in run_checks()}
    with override_tp_settings(**{**SETTINGS, **overrides}):
        errors = [m for m in run_checks() if m.id == "trusted_publishing.E022"]
    assert len(errors) == 1 and message in errors[0].msg


@pytest.fixture
def principal(client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher) -> Any:
    Project.objects.create(name="widgets", created_by="alice")
    with override_tp_settings(**SETTINGS):
        raw = assert_minted(
            post_mint(
                client,
                github_issuer.sign(github_issuer.github_claims()),
                features=["multi-use-token"],
            )
        )
    found = authenticate_upload_token(raw)
    assert found is not None
    return found


def _request(user: Any) -> Any:
    request = RequestFactory().post("/legacy/")
    request.user = user
    return request


@pytest.mark.usefixtures("configured")
def test_the_upload_helper_allows_and_refuses_like_pypi(principal: Any) -> None:
    assert check_trusted_upload(_request(principal), "Widgets", "widgets-1.0.tar.gz") is None
    assert IssuedToken.objects.get().upload_count == 1
    # Another project: PyPI's plain-text 403, reason in the status line too.
    refused = check_trusted_upload(_request(principal), "gadgets", "gadgets-1.0.tar.gz")
    assert refused is not None and refused.status_code == 403
    assert refused["Content-Type"] == "text/plain; charset=utf-8"
    assert "may not upload to project 'gadgets'" in refused.reason_phrase
    assert refused.content.decode().rstrip("\n") == refused.reason_phrase
    # A file of another project under this project's name.
    mismatch = check_trusted_upload(_request(principal), "widgets", "gadgets-1.0-py3-none-any.whl")
    assert mismatch is not None and mismatch.status_code == 403
    assert mismatch.reason_phrase == "Start filename for 'widgets' with 'widgets'."
    # An archived project refuses every credential.
    Project.objects.filter(normalized_name="widgets").update(archived=True)
    archived = check_trusted_upload(_request(principal), "widgets", "widgets-2.0.tar.gz")
    assert archived is not None and "does not accept uploads" in archived.reason_phrase
    assert AuditEvent.objects.filter(kind="upload.denied").count() == 2


@pytest.mark.django_db
def test_the_upload_helper_leaves_other_credentials_to_the_host(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("alice")
    assert check_trusted_upload(_request(user), "widgets", "widgets-1.0.tar.gz") is None
    assert not AuditEvent.objects.exists()


@pytest.mark.usefixtures("configured")
def test_rights_do_not_carry_over_to_a_project_deleted_and_created_again(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher, principal: Any
) -> None:
    """Finding 8: an operator deletes project widgets; somebody else creates a new widgets.
    Neither the old publisher nor a token minted before may upload into the new owner's
    project."""
    row = github_publisher.projects.get(name="widgets")
    assert row.host_key == str(Project.objects.get(normalized_name="widgets").pk)
    Project.objects.filter(normalized_name="widgets").delete()
    Project.objects.create(name="widgets", created_by="somebody-else")

    refused = check_trusted_upload(_request(principal), "widgets", "widgets-1.0.tar.gz")
    assert refused is not None and refused.status_code == 403
    assert "deleted and created again" in refused.reason_phrase
    response = post_mint(client, github_issuer.sign(github_issuer.github_claims()))
    assert response.status_code == 422
    assert "deleted and created again" in response.json()["detail"]
    assert IssuedToken.objects.get().upload_count == 0


@pytest.mark.usefixtures("configured")
def test_a_pending_publisher_is_bound_to_the_project_it_creates(
    client: Any, github_issuer: TestIssuer
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from trusted_publishing.models import TrustedIssuer

    pending = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=github_issuer.url),
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
        pending_expires_at=timezone.now() + timedelta(days=1),
    )
    pending.add_projects(["fresh"])
    assert pending.projects.get().host_key == ""
    assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    created = Project.objects.get(normalized_name="fresh")
    assert pending.projects.get().host_key == str(created.pk)
