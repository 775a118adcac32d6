"""The development identity provider must never run in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


@register(Tags.security)
def check_debug_only(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.DEBUG:
        return []
    return [
        Error(
            "The development identity provider (example_project.devidp) is installed while "
            "DEBUG is off.",
            hint="Anyone could mint identity tokens for any repository with it. Remove "
            "'example_project.devidp' from INSTALLED_APPS (unset DEVIDP_ENABLED) in production.",
            id="devidp.E001",
        )
    ]
