"""Upload tokens minted by an exchange. Only a SHA-256 digest of each is stored."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .publishers import Publisher


class IssuedTokenQuerySet(models.QuerySet["IssuedToken"]):
    """A token's states, defined once (``state`` below is the same rule for one row)."""

    def live(self) -> IssuedTokenQuerySet:
        """Not revoked, not expired, and not a single-use token already used."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now()).exclude(
            single_use=True, used_at__isnull=False
        )


class IssuedToken(models.Model):
    class Feature(models.TextChoices):
        SINGLE_USE = "single-use-token", _("single use")
        MULTI_USE = "multi-use-token", _("multi use")

    digest = models.CharField(max_length=64, unique=True, editable=False)
    # Deleting or disabling the publisher stops its tokens at once (checked on every upload).
    publisher = models.ForeignKey(
        Publisher, on_delete=models.CASCADE, related_name="tokens", verbose_name=_("publisher")
    )
    projects = models.JSONField(_("projects"), default=list)
    single_use = models.BooleanField(_("single use"), default=False)
    created_at = models.DateTimeField(_("issued"), default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    used_at = models.DateTimeField(_("first upload"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last upload"), null=True, blank=True)
    upload_count = models.PositiveIntegerField(_("uploads"), default=0)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_reason = models.CharField(_("revocation reason"), max_length=200, blank=True)
    issuer_url = models.CharField(_("issuer"), max_length=400)
    # Searchable snapshot of who asked: repository / project path / e-mail, and the CI run.
    subject = models.CharField(_("repository / subject"), max_length=400, db_index=True)
    run_id = models.CharField(_("run / pipeline id"), max_length=100, blank=True, db_index=True)
    # Non-secret identifying claims at mint time (ref, sha, workflow, environment, …).
    claims = models.JSONField(_("claims"), default=dict)

    objects = IssuedTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("issued token")
        verbose_name_plural = _("issued tokens")
        ordering = ["-created_at"]
        permissions = [("revoke_issuedtoken", _("Can revoke issued tokens"))]
        indexes = [
            # Only revoked tokens are indexed (the admin's "revoked" filter): a new token, on the
            # path of every release, adds no entry to it.
            models.Index(
                fields=["revoked_at"],
                name="tp_token_revoked",
                condition=models.Q(revoked_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"token #{self.pk} ({', '.join(self.projects)})"

    @property
    def state(self) -> str:
        """"live", "revoked", "used" or "expired" (live is exactly ``objects.live()``)."""
        now = timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.single_use and self.used_at is not None:
            return "used"
        if self.expires_at <= now:
            return "expired"
        return "live"

    @property
    def features(self) -> list[str]:
        return [self.Feature.SINGLE_USE if self.single_use else self.Feature.MULTI_USE]
