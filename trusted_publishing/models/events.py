"""The audit trail: every exchange, upload authorisation and revocation, with no secrets."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.Model):
    class Kind(models.TextChoices):
        TOKEN_MINTED = "token.minted", _("token minted")
        EXCHANGE_FAILED = "exchange.failed", _("exchange refused")
        UPLOAD_AUTHORISED = "upload.authorised", _("upload authorised")
        UPLOAD_DENIED = "upload.denied", _("upload refused")
        TOKEN_REVOKED = "token.revoked", _("token revoked")
        TOKEN_BURNED = "token.burned", _("token burned by client")
        PUBLISHER_REIFIED = "publisher.reified", _("pending publisher created project")

    class Outcome(models.TextChoices):
        SUCCESS = "success", _("success")
        FAILURE = "failure", _("failure")

    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    kind = models.CharField(_("event"), max_length=32, choices=Kind.choices)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    message = models.TextField(_("message"), blank=True)
    issuer_url = models.CharField(_("issuer"), max_length=400, blank=True)
    publisher = models.ForeignKey(
        "trusted_publishing.Publisher",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    publisher_label = models.CharField(_("publisher"), max_length=400, blank=True)
    # DO_NOTHING (no database constraint either): an event keeps the id of a token that
    # `purge` deleted, and deleting expired tokens rewrites no audit row.
    token = models.ForeignKey(
        "trusted_publishing.IssuedToken",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    projects = models.JSONField(_("projects"), default=list, blank=True)
    claims = models.JSONField(_("claims"), default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    actor = models.CharField(_("actor"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["kind", "created_at"], name="tp_event_kind_time"),
            models.Index(fields=["outcome", "created_at"], name="tp_event_outcome_time"),
            # Only events with an error code are indexed (the admin's error-code filter): the
            # success events of every mint and upload add no entry to it.
            models.Index(
                fields=["error_code"],
                name="tp_event_error_code",
                condition=~models.Q(error_code=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.strip_nul()
        super().save(*args, **kwargs)

    def strip_nul(self) -> None:
        """Replace NUL in every text and JSON value.

        Events record client-supplied text; PostgreSQL rejects NUL in text and jsonb, which
        would turn a refusal into a database error (and a lost audit row).
        """
        for field in self._meta.concrete_fields:
            value = getattr(self, field.attname)
            cleaned = without_nul(value)
            if cleaned is not value:
                setattr(self, field.attname, cleaned)


def without_nul(value: Any) -> Any:
    """``value`` with NUL replaced in every string, nested ones included; ``value`` itself (the
    same object) when it holds none."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    # repr() escapes every NUL in nested strings as \x00: one C-speed scan decides whether the
    # (rarely needed) recursive copy must run.
    if isinstance(value, list | dict) and "\\x00" in repr(value):
        return _without_nul(value)
    return value


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value
