"""Publisher and issuer validation (PyPI's rules; shared by the admin and the CLI)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.forms import inlineformset_factory
from django.utils import timezone

from trusted_publishing.conf import override_tp_settings
from trusted_publishing.forms import (
    PublisherProjectForm,
    PublisherProjectFormSet,
    TrustedIssuerForm,
    clean_project_name,
    parse_static_jwks,
)
from trusted_publishing.models import (
    GitHubPublisher,
    Publisher,
    PublisherProject,
    TrustedIssuer,
)
from trusted_publishing.providers.activestate import ActiveStatePublisherForm
from trusted_publishing.providers.github import GitHubPublisherForm
from trusted_publishing.providers.gitlab import GitLabPublisherForm
from trusted_publishing.providers.google import GooglePublisherForm
from trusted_publishing.testing import TestIssuer

pytestmark = pytest.mark.django_db

GITHUB_URL = "https://token.actions.githubusercontent.com"


def github_data(**overrides: object) -> dict[str, object]:
    data = {
        "issuer": TrustedIssuer.objects.get(url=GITHUB_URL).pk,
        "repository_owner": "acme",
        "repository_name": "widgets",
        "workflow_filename": "release.yml",
        "environment": "",
        "enabled": "on",
    }
    data.update(overrides)
    return data


# --- GitHub -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("repository_owner", "acme", True),
        ("repository_owner", "Acme-Corp-2", True),
        ("repository_owner", "-acme", False),
        ("repository_owner", "ac_me", False),
        ("repository_owner", "ac me", False),
        ("repository_name", "widgets.py-2_x", True),
        ("repository_name", "a/b", False),
        ("repository_name", "wid gets", False),
        ("workflow_filename", "release.yml", True),
        ("workflow_filename", "Release.YAML", False),
        ("workflow_filename", "release.yaml", True),
        ("workflow_filename", "  release.yml ", True),
        ("workflow_filename", "release.txt", False),
        ("workflow_filename", ".github/workflows/release.yml", False),
        ("environment", "", True),
        ("environment", "PyPI Release", True),
        ("environment", "x" * 255, True),
        ("environment", "x" * 256, False),
        ("environment", " pypi", False),
        ("environment", "pypi ", False),
        ("environment", "py'pi", False),
        ("environment", 'py"pi', False),
        ("environment", "py`pi", False),
        ("environment", "py,pi", False),
        ("environment", "py;pi", False),
        ("environment", "py\\pi", False),
        ("environment", "py\x07pi", False),
        ("environment", "py\x7fpi", False),
    ],
)
def test_github_field_rules(field: str, value: str, valid: bool) -> None:
    form = GitHubPublisherForm(data=github_data(**{field: value}))
    assert form.is_valid() is valid, form.errors
    if not valid:
        assert field in form.errors


def test_github_workflow_with_directory_gets_pypis_message() -> None:
    form = GitHubPublisherForm(data=github_data(workflow_filename=".github/workflows/release.yml"))
    assert not form.is_valid()
    assert form.errors["workflow_filename"] == [
        "Workflow filename must be a filename only, without directories"
    ]


def test_github_environment_is_stored_lowercased_and_workflow_stripped() -> None:
    form = GitHubPublisherForm(data=github_data(environment="PyPI", workflow_filename=" r.yml "))
    assert form.is_valid(), form.errors
    publisher = form.save()
    publisher.refresh_from_db()
    assert publisher.environment == "pypi"
    assert publisher.workflow_filename == "r.yml"
    assert publisher.pending_expires_at is None


def test_issuer_defaults_to_the_public_one_and_must_match_provider() -> None:
    form = GitHubPublisherForm()
    assert form.initial["issuer"] == TrustedIssuer.objects.get(url=GITHUB_URL).pk
    # Only GitHub issuers are offered...
    assert set(form.fields["issuer"].queryset.values_list("provider", flat=True)) == {"github"}
    # ...and a GitLab issuer is refused even if posted.
    gitlab = TrustedIssuer.objects.get(url="https://gitlab.com")
    form = GitHubPublisherForm(data=github_data(issuer=gitlab.pk))
    assert not form.is_valid()
    assert "issuer" in form.errors


def test_custom_github_enterprise_issuer_is_accepted() -> None:
    ghes = TrustedIssuer.objects.create(
        url="https://ghe.example.com/_services/token", provider="github", name="GHES"
    )
    form = GitHubPublisherForm(data=github_data(issuer=ghes.pk))
    assert form.is_valid(), form.errors
    assert form.save().issuer == ghes


def test_pending_checkbox_sets_expiry_from_setting() -> None:
    with override_tp_settings(PENDING_PUBLISHER_LIFETIME=3600):
        form = GitHubPublisherForm(data=github_data(pending="on"))
        assert form.is_valid(), form.errors
        publisher = form.save()
    expected = timezone.now() + timedelta(seconds=3600)
    assert publisher.pending_expires_at is not None
    assert abs((publisher.pending_expires_at - expected).total_seconds()) < 60
    # Editing it again without ticking "pending" makes it an ordinary publisher.
    form = GitHubPublisherForm(data=github_data(), instance=publisher)
    assert form.fields["pending"].initial is True
    assert form.is_valid(), form.errors
    assert form.save().pending_expires_at is None


def test_duplicate_configuration_is_reported_with_the_existing_id() -> None:
    first = GitHubPublisherForm(data=github_data(environment="PyPI"))
    assert first.is_valid()
    existing = first.save()
    # Same identity, differently cased environment: still the same publisher.
    second = GitHubPublisherForm(data=github_data(environment="pypi"))
    assert not second.is_valid()
    assert f"#{existing.pk}" in str(second.non_field_errors())
    # A different environment is a different publisher.
    assert GitHubPublisherForm(data=github_data(environment="staging")).is_valid()


# --- GitLab -------------------------------------------------------------------------------------
def gitlab_data(**overrides: object) -> dict[str, object]:
    data = {
        "issuer": TrustedIssuer.objects.get(url="https://gitlab.com").pk,
        "namespace": "acme/platform",
        "project": "widgets",
        "workflow_filepath": ".gitlab-ci.yml",
        "environment": "",
        "enabled": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("namespace", "acme", True),
        ("namespace", "acme/platform-team/sub.group", True),
        ("namespace", "-acme", False),
        ("namespace", "acme-", False),
        ("namespace", "ac__me", False),
        ("namespace", "ac.-me", False),
        ("namespace", "acme.git", False),
        ("project", "widgets", True),
        ("project", "my.widgets_2", True),
        ("project", "widgets.atom", False),
        ("project", "widgets.GIT", False),
        ("project", "wid--gets", False),
        ("project", "wid/gets", False),
        ("project", "w", False),
        ("workflow_filepath", ".gitlab-ci.yml", True),
        ("workflow_filepath", "ci/release.yaml", True),
        ("workflow_filepath", "/ci/release.yml", False),
        ("workflow_filepath", "ci/release.yml/", False),
        ("workflow_filepath", "ci/release.json", False),
        ("environment", "", True),
        ("environment", "Production ${CI} /eu_1", True),
        ("environment", "prod!", False),
        ("environment", "prod;rm", False),
    ],
)
def test_gitlab_field_rules(field: str, value: str, valid: bool) -> None:
    form = GitLabPublisherForm(data=gitlab_data(**{field: value}))
    assert form.is_valid() is valid, form.errors
    if not valid:
        assert field in form.errors


def test_gitlab_environment_keeps_case_and_blank_means_any() -> None:
    form = GitLabPublisherForm(data=gitlab_data(environment="Production"))
    assert form.is_valid(), form.errors
    assert form.save().environment == "Production"
    form = GitLabPublisherForm(data=gitlab_data(environment="   ", project="gadgets"))
    assert form.is_valid(), form.errors
    assert form.save().environment == ""


def test_self_managed_gitlab_issuer() -> None:
    issuer = TrustedIssuer.objects.create(url="https://gitlab.example.com", provider="gitlab")
    form = GitLabPublisherForm(data=gitlab_data(issuer=issuer.pk))
    assert form.is_valid(), form.errors


# --- Google / ActiveState -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("email", "valid"),
    [("release@acme-ci.iam.gserviceaccount.com", True), ("not-an-email", False), ("", False)],
)
def test_google_email(email: str, valid: bool) -> None:
    form = GooglePublisherForm(
        data={
            "issuer": TrustedIssuer.objects.get(provider="google").pk,
            "email": email,
            "sub": "",
            "enabled": "on",
        }
    )
    assert form.is_valid() is valid, form.errors


@pytest.mark.parametrize(
    ("project", "valid"),
    [
        ("widgets", True),
        ("my.widgets-2", True),
        ("ab", False),
        ("a" * 41, False),
        ("wid--gets", False),
        ("-widgets", False),
        ("widgets-", False),
        ("wid_gets", False),
    ],
)
def test_activestate_project(project: str, valid: bool) -> None:
    form = ActiveStatePublisherForm(
        data={
            "issuer": TrustedIssuer.objects.get(provider="activestate").pk,
            "organization": "acme",
            "activestate_project_name": project,
            "actor": "",
            "actor_id": "a1b2c3",
            "enabled": "on",
        }
    )
    assert form.is_valid() is valid, form.errors


# --- projects -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "normalised"),
    [("Widgets", "widgets"), ("Foo_Bar.baz", "foo-bar-baz"), ("a", "a"), ("x--y", "x-y")],
)
def test_project_names_are_normalised(name: str, normalised: str) -> None:
    assert clean_project_name(name) == normalised


@pytest.mark.parametrize("name", ["", "-widgets", "widgets-", "wid gets", "wid/gets", "é"])
def test_invalid_project_names(name: str) -> None:
    form = PublisherProjectForm(data={"name": name})
    assert not form.is_valid()
    assert "name" in form.errors


ProjectFormSet = inlineformset_factory(
    Publisher,
    PublisherProject,
    form=PublisherProjectForm,
    formset=PublisherProjectFormSet,
    fields=["name"],
    extra=0,
)


def _formset_data(names: list[str]) -> dict[str, object]:
    data: dict[str, object] = {
        "projects-TOTAL_FORMS": str(len(names)),
        "projects-INITIAL_FORMS": "0",
        "projects-MIN_NUM_FORMS": "0",
        "projects-MAX_NUM_FORMS": "1000",
    }
    for i, name in enumerate(names):
        data[f"projects-{i}-name"] = name
    return data


def _publisher(pending: bool = False, repo: str = "widgets") -> GitHubPublisher:
    return GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=GITHUB_URL),
        repository_owner="acme",
        repository_name=repo,
        workflow_filename="release.yml",
        pending_expires_at=timezone.now() + timedelta(days=1) if pending else None,
    )


def test_formset_needs_a_project_and_dedupes_after_normalising() -> None:
    publisher = _publisher()
    formset = ProjectFormSet(data=_formset_data([]), instance=publisher)
    assert not formset.is_valid()
    assert "at least one project" in str(formset.non_form_errors())
    formset = ProjectFormSet(data=_formset_data(["Foo_Bar", "foo-bar"]), instance=publisher)
    assert not formset.is_valid()
    formset = ProjectFormSet(data=_formset_data(["Foo_Bar"]), instance=publisher)
    assert formset.is_valid(), formset.errors
    formset.save()
    assert publisher.project_names() == ["foo-bar"]


def test_pending_publisher_refuses_an_existing_project() -> None:
    _publisher(repo="existing").add_projects(["widgets"])  # an active publisher => project exists
    pending = _publisher(pending=True)
    formset = ProjectFormSet(data=_formset_data(["Widgets"]), instance=pending)
    assert not formset.is_valid()
    assert "already exist" in str(formset.non_form_errors())
    formset = ProjectFormSet(data=_formset_data(["brand-new"]), instance=pending)
    assert formset.is_valid(), formset.non_form_errors()


# --- issuers ------------------------------------------------------------------------------------
def issuer_data(**overrides: object) -> dict[str, object]:
    data = {
        "url": "https://ghe.example.com/_services/token",
        "provider": "github",
        "name": "GHES",
        "key_source": "discovery",
        "static_jwks": "",
        "enabled": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("url", "allow_loopback", "valid"),
    [
        ("https://gitlab.example.com", False, True),
        ("http://gitlab.example.com", True, False),
        ("http://127.0.0.1:8123", True, True),
        ("http://localhost:8123/issuer", True, True),
        ("http://127.0.0.1:8123", False, False),
        ("ftp://gitlab.example.com", True, False),
        ("https://", False, False),
        ("https://user:pw@gitlab.example.com", False, False),
        ("https://gitlab.example.com/?x=1", False, False),
        ("https://gitlab.example.com/a b", False, False),
    ],
)
def test_issuer_url_rules(url: str, allow_loopback: bool, valid: bool) -> None:
    with override_tp_settings(ALLOW_INSECURE_LOOPBACK_ISSUERS=allow_loopback):
        form = TrustedIssuerForm(data=issuer_data(url=url))
        assert form.is_valid() is valid, form.errors


def test_static_jwks_is_validated_and_stored() -> None:
    issuer = TestIssuer("https://ghe.example.com/_services/token", kid="key-1")
    form = TrustedIssuerForm(
        data=issuer_data(key_source="static", static_jwks=json.dumps(issuer.jwks()))
    )
    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.static_jwks["keys"][0]["kid"] == "key-1"


def _bad_jwks_cases() -> list[tuple[object, str]]:
    good = TestIssuer(kid="k1").public_jwk()
    private = json.loads(__import__("jwt").algorithms.RSAAlgorithm.to_jwk(TestIssuer().private_key))
    private["kid"] = "k2"
    no_kid = {k: v for k, v in good.items() if k != "kid"}
    return [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ("{}", "non-empty"),
        ('{"keys": []}', "non-empty"),
        (json.dumps({"keys": [private]}), "private key members"),
        (
            json.dumps({"keys": [{"kty": "EC", "kid": "e", "crv": "P-256", "x": "a", "y": "b"}]}),
            "not an RSA key",
        ),
        (json.dumps({"keys": [no_kid]}), 'no "kid"'),
        (json.dumps({"keys": [{**good, "n": "!!"}]}), "not a usable RSA public key"),
        (json.dumps({"keys": [good, good]}), "appears twice"),
    ]


@pytest.mark.parametrize(("jwks", "message"), _bad_jwks_cases())
def test_bad_static_jwks(jwks: str, message: str) -> None:
    form = TrustedIssuerForm(data=issuer_data(key_source="static", static_jwks=jwks))
    assert not form.is_valid()
    assert message in " ".join(form.errors["static_jwks"])
    # Never echo key material back.
    if "private" in message:
        assert json.loads(jwks)["keys"][0]["d"] not in str(form.errors)


def test_static_source_needs_jwks_and_discovery_refuses_one() -> None:
    form = TrustedIssuerForm(data=issuer_data(key_source="static"))
    assert not form.is_valid()
    assert "needs the issuer" in str(form.errors["static_jwks"])
    jwks = json.dumps(TestIssuer(kid="k").jwks())
    form = TrustedIssuerForm(data=issuer_data(key_source="discovery", static_jwks=jwks))
    assert not form.is_valid()
    assert "only used with key source" in str(form.errors["static_jwks"])


def test_parse_static_jwks_accepts_decoded_objects() -> None:
    jwks = TestIssuer(kid="k").jwks()
    assert parse_static_jwks(jwks) == jwks


def test_issuer_provider_cannot_change_under_its_publishers() -> None:
    issuer = TrustedIssuer.objects.create(
        url="https://ghe.example.com/_services/token", provider="github"
    )
    GitHubPublisher.objects.create(
        issuer=issuer, repository_owner="a", repository_name="b", workflow_filename="c.yml"
    )
    form = TrustedIssuerForm(data=issuer_data(provider="gitlab"), instance=issuer)
    assert not form.is_valid()
    assert "cannot change" in str(form.errors["provider"])
