"""ActiveState Platform claim rules. These tokens carry no `jti`."""

from __future__ import annotations

from typing import Any

from ..models import ActiveStatePublisher, Provider, TrustedIssuer
from .base import ClaimMismatch, ProviderRules, claim_str


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
