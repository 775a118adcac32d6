from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrustedPublishingConfig(AppConfig):
    name = "trusted_publishing"
    label = "trusted_publishing"
    verbose_name = _("Trusted Publishing")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks and the receivers that revoke tokens on disable/removal.
        from . import checks, receivers  # noqa: F401
