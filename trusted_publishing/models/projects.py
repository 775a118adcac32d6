"""Projects that pending publishers created: at most one publisher ever creates a given name."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class CreatedProject(models.Model):
    # A unique insert serialises concurrent first exchanges of pending publishers for one name:
    # the second waits for the first transaction and then fails (see exchange._reify).
    name = models.CharField(_("project"), max_length=255, unique=True)
    publisher = models.ForeignKey(
        "trusted_publishing.Publisher",
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("created by publisher"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("project created by a pending publisher")
        verbose_name_plural = _("projects created by pending publishers")

    def __str__(self) -> str:
        return self.name
