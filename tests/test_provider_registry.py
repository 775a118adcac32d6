"""Adding a provider means its rules module, its model and one registry entry.

The throwaway provider "acme" below is declared here only by a rules object and a registry
entry around an existing model (``GooglePublisher``: an e-mail and an optional id); the CLI, the
admin and the exchange then serve it without any other change. The last tests check that the
admin, forms and CLI modules name no provider at all.
"""

from __future__ import annotations

import ast
import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import path

import trusted_publishing
from trusted_publishing import admin as tp_admin
from trusted_publishing.models import IssuedToken, Provider, TrustedIssuer
from trusted_publishing.models.publishers import PUBLISHER_MODELS, GooglePublisher
from trusted_publishing.providers import (
    PROVIDERS,
    RULES,
    ClaimMismatch,
    CliOption,
    ProviderRules,
    ProviderSpec,
    get_rules,
)
from trusted_publishing.providers.base import claim_str
from trusted_publishing.providers.google import GooglePublisherForm
from trusted_publishing.testing import TestIssuer

ACME_URL = "https://ci.acme.test/oidc"


# --- the throwaway provider: a rules object and a registry entry -------------------------------
def check_account(publisher: GooglePublisher, claims: dict[str, Any], issuer: Any) -> None:
    if claim_str(claims, "account").lower() != publisher.email.lower():
        raise ClaimMismatch("account", f"account is not {publisher.email!r}")


def check_trigger(publisher: GooglePublisher, claims: dict[str, Any], issuer: Any) -> None:
    if claims.get("trigger") != "release":
        raise ClaimMismatch("trigger", "only release pipelines publish")


class AcmeRules(ProviderRules):
    provider = "acme"
    model = GooglePublisher
    requires_jti = True
    required_claims = ("account", "trigger")
    lookup_claims = ("account",)
    checks = (("account", check_account), ("trigger", check_trigger))
    snapshot_claims = ("account", "pipeline")
    run_id_claim = "pipeline"

    def subject(self, claims: dict[str, Any]) -> str:
        return str(claims.get("account", "")).lower()


class AcmeForm(GooglePublisherForm):
    """The model's form, offering this provider's issuers."""

    @property
    def provider_id(self) -> str:
        return "acme"


ACME = ProviderSpec(
    rules=AcmeRules(),
    form=AcmeForm,
    public_issuers=(ACME_URL,),
    cli_options=(
        CliOption("account", "email", help="service account (Acme CI)"),
        CliOption("sub", "sub", help="service account unique id (optional)", required=False),
    ),
    admin_columns=("email", "sub"),
    admin_search=("sub",),
)

# An admin site of its own: the project's site already shows GooglePublisher.
acme_site = django_admin.AdminSite(name="acme_admin")
acme_site.register(ACME.model, tp_admin.provider_admin(ACME))
urlpatterns = [path("acme-admin/", acme_site.urls)]


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch, db: Any) -> TestIssuer:
    monkeypatch.setitem(PROVIDERS, ACME.id, ACME)
    issuer = TestIssuer(ACME_URL)
    issuer.register(ACME.id)
    return issuer


def run(*args: str) -> str:
    out = StringIO()
    call_command("trusted_publishing", *args, stdout=out)
    return out.getvalue()


def acme_claims(
    issuer: TestIssuer, account: str = "release@acme.test", trigger: str = "release"
) -> dict[str, Any]:
    return issuer.base_claims(account=account, trigger=trigger, pipeline="77")


# --- the throwaway provider at work -------------------------------------------------------------
def test_registry_entry_reaches_the_exchange(acme: TestIssuer, mint: Any) -> None:
    assert get_rules("acme") is ACME.rules and RULES["acme"] is ACME.rules
    publisher = GooglePublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=acme.url), email="release@acme.test"
    )
    publisher.add_projects(["widgets"])

    response = mint(acme.sign(acme_claims(acme, account="Release@ACME.test")))
    assert response.status_code == 200, response.content
    token = IssuedToken.objects.get()
    assert (token.publisher_id, token.run_id) == (publisher.pk, "77")
    assert token.claims["account"] == "Release@ACME.test"

    response = mint(acme.sign(acme_claims(acme, trigger="manual")))
    assert response.status_code == 422
    assert "only release pipelines publish" in response.content.decode()


def test_registry_entry_reaches_the_cli(
    acme: TestIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        run("add-publisher", "--help")
    help_text = capsys.readouterr().out
    assert re.search(r"^acme:\n  --account ACCOUNT +service account \(Acme CI\)$", help_text, re.M)
    # Another provider reads --sub too: it moves to a group of both, its help said once.
    assert re.search(
        r"^google / acme:\n  --sub SUB +service account unique id \(optional\)$", help_text, re.M
    )

    with pytest.raises(CommandError, match="--provider acme needs --account"):
        run("add-publisher", "--provider", "acme", "--project", "widgets")
    data = json.loads(
        run(
            "add-publisher",
            "--provider",
            "acme",
            "--account",
            "release@acme.test",
            "--project",
            "widgets",
            "--json",
        )
    )
    assert data["created"] is True
    assert data["issuer"] == ACME_URL  # the entry's public issuer, preselected
    assert data["identity"] == {"email": "release@acme.test", "sub": ""}
    assert data["projects"] == ["widgets"]
    assert [row["id"] for row in json.loads(run("list-issuers", "--provider", "acme", "--json"))]


@pytest.mark.urls(__name__)
def test_registry_entry_makes_an_admin_screen(acme: TestIssuer, admin_user: User) -> None:
    client = Client()
    client.force_login(admin_user)
    issuer = TrustedIssuer.objects.get(url=ACME_URL)
    page = client.get("/acme-admin/trusted_publishing/googlepublisher/add/").content.decode()
    assert re.search(rf'<option value="{issuer.pk}" selected>', page)  # the public issuer

    data = {
        "issuer": issuer.pk,
        "email": "release@acme.test",
        "enabled": "on",
        "projects-TOTAL_FORMS": "1",
        "projects-INITIAL_FORMS": "0",
        "projects-0-name": "Widgets",
    }
    response = client.post("/acme-admin/trusted_publishing/googlepublisher/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert GooglePublisher.objects.get().project_names() == ["widgets"]
    page = client.get("/acme-admin/trusted_publishing/googlepublisher/?q=widgets").content.decode()
    assert "release@acme.test" in page and "column-live_token_count" in page


# --- nothing provider-specific outside the registry -------------------------------------------
def test_registry_entries_agree_with_the_models() -> None:
    assert list(PROVIDERS) == list(Provider.values) == list(PUBLISHER_MODELS)
    for provider_id, spec in PROVIDERS.items():
        assert spec.id == provider_id and spec.model is PUBLISHER_MODELS[provider_id]
        assert spec.model.provider_id == provider_id
        assert spec.form._meta.model is spec.model
        fields = list(spec.form._meta.fields)
        assert fields == ["issuer", *spec.identity_fields, "enabled"]
        for option in spec.cli_options:
            targets = option.field.fields if not isinstance(option.field, str) else [option.field]
            assert set(targets) <= set(fields), option
        assert set(spec.bound_fields) <= {f.name for f in spec.model._meta.fields}
        admin_class = django_admin.site._registry[spec.model]
        assert admin_class.form is spec.form


PACKAGE = Path(trusted_publishing.__file__).parent
GENERIC_MODULES = [
    "admin.py",
    "forms.py",
    "cli.py",
    "management/commands/trusted_publishing.py",
]


def provider_mentions(source: str) -> list[str]:
    """Lines that name a registered provider: its ``Provider`` member, its model or form class,
    or its id as a word of a string (example URLs in messages aside)."""
    ids = "|".join(re.escape(provider_id) for provider_id in PROVIDERS)
    word = re.compile(rf"(?<![a-z0-9])({ids})(?![a-z0-9])")
    classes = {cls.__name__ for spec in PROVIDERS.values() for cls in (spec.model, spec.form)}
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr in Provider.names:
            found.append(f"{line}: Provider.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in classes:
            found.append(f"{line}: {node.id}")
        elif isinstance(node, ast.alias) and node.name in classes:
            found.append(f"{line}: import {node.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = re.sub(r"https?://\S+", "", node.value.lower())
            if word.search(text):
                found.append(f"{line}: {node.value[:60]!r}")
    return found


@pytest.mark.parametrize("module", GENERIC_MODULES)
def test_admin_forms_and_cli_name_no_provider(module: str) -> None:
    found = provider_mentions((PACKAGE / module).read_text(encoding="utf-8"))
    assert not found, f"{module} names providers (declare them in providers/<id>.py): {found}"


def test_the_check_above_finds_provider_code() -> None:
    source = """
from .models import GitHubPublisher
if provider == Provider.GITLAB:
    group = parser.add_argument_group("google / activestate")
hint = "e.g. https://gitlab.example.com"
"""
    assert [line.split(":")[0] for line in provider_mentions(source)] == ["2", "3", "4"]
