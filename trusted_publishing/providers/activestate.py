"""ActiveState Platform. These tokens carry no `jti`."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ..forms import PublisherForm
from ..models import TrustedIssuer
from ..models.publishers import ActiveStatePublisher, Provider
from .base import ClaimMismatch, ProviderRules, claim_str
from .spec import CliOption, ProviderSpec


def check_organization(
    publisher: ActiveStatePublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    if claim_str(claims, "organization").lower() != publisher.organization.lower():
        raise ClaimMismatch("organization", f"organization is not {publisher.organization!r}")


def check_project(
    publisher: ActiveStatePublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    if claim_str(claims, "project").lower() != publisher.activestate_project_name.lower():
        raise ClaimMismatch(
            "project", f"ActiveState project is not {publisher.activestate_project_name!r}"
        )


def check_actor_id(
    publisher: ActiveStatePublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    if claim_str(claims, "actor_id") != publisher.actor_id:
        raise ClaimMismatch("actor_id", "actor id does not match")


def check_sub(
    publisher: ActiveStatePublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    parts = claim_str(claims, "sub").split(":")
    expected = ["org", publisher.organization, "project", publisher.activestate_project_name]
    if len(parts) < 4 or [p.lower() for p in parts[:4]] != [e.lower() for e in expected]:
        raise ClaimMismatch("sub", "subject does not name this organization and project")


def check_builder(
    publisher: ActiveStatePublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    if claims.get("builder") != "pypi-publisher":
        raise ClaimMismatch("builder", "token was not issued to ActiveState's publishing builder")


class ActiveStateRules(ProviderRules):
    provider = Provider.ACTIVESTATE
    model = ActiveStatePublisher
    requires_jti = False
    required_claims = ("sub", "organization", "project", "actor_id", "builder")
    lookup_claims = ("organization", "project")
    checks = (
        ("organization", check_organization),
        ("project", check_project),
        ("actor_id", check_actor_id),
        ("sub", check_sub),
        ("builder", check_builder),
    )
    snapshot_claims = ("sub", "organization", "project", "actor", "actor_id", "project_path")

    def subject(self, claims: dict[str, Any]) -> str:
        return f"{claims.get('organization', '')}/{claims.get('project', '')}".lower()


# --- registration (PyPI's rules, see warehouse/oidc/forms) --------------------------------------
PROJECT_RE = re.compile(r"^[.a-zA-Z0-9-]{3,40}$")


class ActiveStatePublisherForm(PublisherForm):
    class Meta:
        model = ActiveStatePublisher
        fields = [
            "issuer",
            "organization",
            "activestate_project_name",
            "actor",
            "actor_id",
            "enabled",
        ]
        help_texts = {
            "actor_id": _("The ActiveState user id the builds run as (the actor_id claim)."),
        }

    def clean_organization(self) -> str:
        org = self.cleaned_data["organization"].strip()
        if not org:
            raise ValidationError(_("Enter the ActiveState organization."))
        return org

    def clean_activestate_project_name(self) -> str:
        name = self.cleaned_data["activestate_project_name"].strip()
        if not PROJECT_RE.match(name) or "--" in name or name.startswith("-") or name.endswith("-"):
            raise ValidationError(
                _(
                    "Invalid ActiveState project name: 3-40 letters, digits, '.' or '-', no "
                    "leading, trailing or doubled '-'."
                )
            )
        return name

    def clean_actor_id(self) -> str:
        actor_id = self.cleaned_data["actor_id"].strip()
        if not actor_id:
            raise ValidationError(_("Enter the actor id."))
        return actor_id


ACTIVESTATE = ProviderSpec(
    rules=ActiveStateRules(),
    form=ActiveStatePublisherForm,
    public_issuers=("https://platform.activestate.com/api/v1/oauth/oidc",),
    cli_options=(
        CliOption("organization", "organization"),
        CliOption("activestate-project", "activestate_project_name"),
        CliOption("actor", "actor", help="actor name (informational)", required=False),
        CliOption("actor-id", "actor_id"),
    ),
    admin_columns=("organization", "activestate_project_name", "actor_id"),
    admin_search=("actor_id",),
)
