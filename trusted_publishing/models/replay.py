"""Identity tokens already exchanged: a unique insert makes each one usable once."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class UsedIdentityToken(models.Model):
    # sha256(issuer NUL jti) or sha256(issuer NUL token) for issuers without `jti` (Google):
    # fixed length whatever the attacker sends, and no token material at rest.
    key = models.CharField(max_length=64, primary_key=True)
    issuer_url = models.CharField(max_length=400)
    # Kept until the identity token could no longer verify (exp + leeway + margin).
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("used identity token")
        verbose_name_plural = _("used identity tokens")

    def __str__(self) -> str:
        return f"{self.issuer_url} {self.key[:12]}…"
