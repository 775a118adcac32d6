"""The development identity provider must never run in production."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

APP = "trusted_publishing.contrib.devidp"


@register(Tags.security)
def check_debug_only(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # Registered when the app is first loaded; say nothing once it is no longer installed.
    if settings.DEBUG or not apps.is_installed(APP):
        return []
    return [
        Error(
            f"The development identity provider ({APP}) is installed while DEBUG is off.",
            hint="Anyone who can reach it can mint identity tokens for any repository. Remove "
            f"'{APP}' from INSTALLED_APPS in production (the example index: unset "
            "DEVIDP_ENABLED).",
            obj=APP,
            id="trusted_publishing.devidp.E001",
        )
    ]


@register()
def check_key_file(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not apps.is_installed(APP):
        return []
    config = getattr(settings, "DEVIDP", {})
    if (isinstance(config, dict) and config.get("KEY_FILE")) or getattr(settings, "DATA_DIR", None):
        return []
    return [
        Error(
            "The development identity provider has nowhere to keep its signing key.",
            hint="Set DEVIDP = {'KEY_FILE': '<path>/devidp-key.pem', ...} (or DATA_DIR) in "
            "settings.",
            obj=APP,
            id="trusted_publishing.devidp.E002",
        )
    ]
