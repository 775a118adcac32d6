"""Google Cloud service-account identity token rules. These tokens carry no `jti`."""

from __future__ import annotations

from typing import Any

from ..models import GooglePublisher, Provider, TrustedIssuer
from .base import ClaimMismatch, ProviderRules, claim_str


def check_email(publisher: GooglePublisher, claims: dict[str, Any], issuer: TrustedIssuer) -> None:
    email = claim_str(claims, "email")
    if email.lower() != publisher.email.lower():
        raise ClaimMismatch("email", f"service account {email!r} is not {publisher.email!r}")


def check_email_verified(
    publisher: GooglePublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    if claims.get("email_verified") is not True:
        raise ClaimMismatch("email_verified", "the token's e-mail address is not verified")


def check_sub(publisher: GooglePublisher, claims: dict[str, Any], issuer: TrustedIssuer) -> None:
    # A service account deleted and re-created with the same e-mail gets a new unique id (sub).
    if publisher.sub and claims.get("sub") != publisher.sub:
        raise ClaimMismatch("sub", "service account unique id (sub) does not match")


class GoogleRules(ProviderRules):
    provider = Provider.GOOGLE
    model = GooglePublisher
    requires_jti = False
    required_claims = ("email", "sub")
    lookup_claims = ("email",)
    checks = (
        ("email", check_email),
        ("email_verified", check_email_verified),
        ("sub", check_sub),
    )
    snapshot_claims = ("email", "sub", "azp")

    def subject(self, claims: dict[str, Any]) -> str:
        return str(claims.get("email", "")).lower()

    def specificity(self, publisher: GooglePublisher) -> int:
        return 1 if publisher.sub else 0
