"""Trusted OIDC issuers: the allowlist, kept in the database so operators can add one live."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from .publishers import Provider


class KeySource(models.TextChoices):
    DISCOVERY = "discovery", _("OIDC discovery (/.well-known/openid-configuration)")
    STATIC = "static", _("Static JWKS (air-gapped)")


def default_algorithms() -> list[str]:
    return ["RS256"]


class TrustedIssuer(models.Model):
    """An identity provider whose tokens this index accepts.

    ``url`` is compared byte for byte with a token's ``iss`` claim before any network call, so
    an unknown issuer never causes a fetch.
    """

    url = models.CharField(
        _("issuer URL"),
        max_length=400,
        unique=True,
        help_text=_("Exactly the `iss` claim, e.g. https://token.actions.githubusercontent.com"),
    )
    provider = models.CharField(_("provider"), max_length=32, choices=Provider.choices)
    name = models.CharField(_("name"), max_length=100, blank=True)
    key_source = models.CharField(
        _("key source"), max_length=16, choices=KeySource.choices, default=KeySource.DISCOVERY
    )
    static_jwks = models.JSONField(
        _("static JWKS"),
        null=True,
        blank=True,
        help_text=_('A JSON Web Key Set ({"keys": [...]}) used instead of discovery.'),
    )
    algorithms = models.JSONField(_("allowed algorithms"), default=default_algorithms)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("trusted issuer")
        verbose_name_plural = _("trusted issuers")
        ordering = ["url"]

    def __str__(self) -> str:
        return self.name or self.url

    def as_cache_dict(self) -> dict[str, Any]:
        return {
            "pk": self.pk,
            "url": self.url,
            "provider": self.provider,
            "key_source": self.key_source,
            "static_jwks": self.static_jwks,
            "algorithms": list(self.algorithms or ["RS256"]),
            "enabled": self.enabled,
        }
