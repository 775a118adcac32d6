"""The host's project registry is the truth (integration.py): no publisher pre-claims a name the
host does not have, no token is minted and no upload authorised for a project it no longer has.

``HostWithProjects`` stands for an index with its own Project model (it overrides
``project_exists``); the default integration, which has no registry, is unaffected.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import UploadDenied
from trusted_publishing.integration import HostIntegration
from trusted_publishing.models import GitHubPublisher, IssuedToken, Publisher, TrustedIssuer
from trusted_publishing.providers import PROVIDERS
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import assert_minted, post_mint


class HostWithProjects(HostIntegration):
    projects: set[str] = set()

    def project_exists(self, name: str) -> bool:
        return name in self.projects


@pytest.fixture
def host() -> Any:
    HostWithProjects.projects = {"widgets"}
    with override_tp_settings(HOST_INTEGRATION=f"{__name__}.HostWithProjects"):
        yield HostWithProjects
    HostWithProjects.projects = set()


def _add_publisher(*extra: str) -> str:
    out = StringIO()
    call_command(
        "trusted_publishing",
        "add-publisher",
        "--provider",
        "github",
        "--repository",
        "acme/widgets",
        "--workflow",
        "release.yml",
        *extra,
        stdout=out,
    )
    return out.getvalue()


@pytest.mark.usefixtures("github_issuer")
def test_the_cli_refuses_an_ordinary_publisher_for_a_project_the_host_lacks(host: Any) -> None:
    with pytest.raises(CommandError) as info:
        _add_publisher("--project", "gadgets")
    assert "gadgets do not exist on this index" in str(info.value)
    assert "--pending" in str(info.value)
    assert not Publisher.objects.exists()
    # Adding the missing project to an existing publisher is refused the same way.
    _add_publisher("--project", "widgets")
    with pytest.raises(CommandError):
        _add_publisher("--project", "gadgets")
    assert GitHubPublisher.objects.get().project_names() == ["widgets"]
    # A pending publisher is how a new project gets its first publisher.
    _add_publisher("--project", "gadgets", "--pending", "--environment", "pypi")
    assert GitHubPublisher.objects.get(environment="pypi").is_pending


def test_the_form_refuses_an_ordinary_publisher_for_a_project_the_host_lacks(
    host: Any, github_issuer: TestIssuer
) -> None:
    from django.forms import inlineformset_factory

    from trusted_publishing.forms import PublisherProjectForm, PublisherProjectFormSet
    from trusted_publishing.models import PublisherProject

    form = PROVIDERS["github"].form(
        data={
            "issuer": TrustedIssuer.objects.get(url=github_issuer.url).pk,
            "repository_owner": "acme",
            "repository_name": "widgets",
            "workflow_filename": "release.yml",
            "enabled": "on",
        }
    )
    assert form.is_valid(), form.errors
    formset_class = inlineformset_factory(
        Publisher,
        PublisherProject,
        form=PublisherProjectForm,
        formset=PublisherProjectFormSet,
        extra=1,
    )
    data = {
        "projects-TOTAL_FORMS": "1",
        "projects-INITIAL_FORMS": "0",
        "projects-0-name": "gadgets",
    }
    formset = formset_class(data=data, instance=form.instance, prefix="projects")
    assert not formset.is_valid()
    assert "do not exist on this index" in str(formset.non_form_errors())
    data["projects-0-name"] = "widgets"
    assert formset_class(data=data, instance=form.instance, prefix="projects").is_valid()


def test_a_name_created_later_by_a_person_is_not_pre_claimed(
    host: Any, client: Any, github_issuer: TestIssuer
) -> None:
    """An operator tries to register CI for a name nobody has yet; later a person creates a
    project of that name. The CI repository must not be able to upload into it."""
    with pytest.raises(CommandError):
        _add_publisher("--project", "later")
    host.projects.add("later")  # a person creates it, with nobody's publisher
    response = post_mint(client, github_issuer.sign(github_issuer.github_claims()))
    assert response.status_code == 422 and response.json()["code"] == "invalid-publisher"
    assert not IssuedToken.objects.exists()


def test_no_token_for_a_project_the_host_no_longer_has(
    host: Any, client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    host.projects.discard("widgets")  # deleted on the host
    response = post_mint(client, github_issuer.sign(github_issuer.github_claims()))
    assert response.status_code == 422
    assert "no longer exist on this index" in response.json()["detail"]
    assert not IssuedToken.objects.exists()


def test_no_upload_to_a_project_the_host_no_longer_has(
    host: Any, client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    raw = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    principal = authenticate_upload_token(raw)
    assert principal is not None
    host.projects.discard("widgets")
    with pytest.raises(UploadDenied, match="Non-user identities cannot create new projects"):
        authorize_upload(principal, "widgets")
    assert IssuedToken.objects.get().upload_count == 0


def test_the_default_integration_keeps_no_registry(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    assert HostIntegration().knows_projects() is False
    assert HostWithProjects().knows_projects() is True
    raw = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    principal = authenticate_upload_token(raw)
    assert principal is not None
    authorize_upload(principal, "widgets")
