"""Google Cloud service-account identity tokens. These tokens carry no `jti`."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from ..forms import PublisherForm
from ..models import TrustedIssuer
from ..models.publishers import GooglePublisher, Provider
from .base import ClaimMismatch, ProviderRules, claim_str
from .spec import CliOption, ProviderSpec


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


# --- registration -------------------------------------------------------------------------------
class GooglePublisherForm(PublisherForm):
    class Meta:
        model = GooglePublisher
        fields = ["issuer", "email", "sub", "enabled"]
        help_texts = {
            "email": _("The service account's e-mail (avoid default service accounts)."),
            "sub": _(
                "Optional unique id of the service account; empty allows any account "
                "with this e-mail."
            ),
        }

    def clean_sub(self) -> str:
        return (self.cleaned_data.get("sub") or "").strip()


GOOGLE = ProviderSpec(
    rules=GoogleRules(),
    form=GooglePublisherForm,
    public_issuers=("https://accounts.google.com",),
    cli_options=(
        CliOption("email", "email", help="service account e-mail"),
        CliOption("sub", "sub", help="service account unique id (optional)", required=False),
    ),
    admin_columns=("email", "sub"),
    admin_search=("sub",),
)
