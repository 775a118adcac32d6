"""A Django authentication backend for minted upload tokens (for non-DRF upload views)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .authentication import TOKEN_USERNAME
from .principal import PublisherPrincipal
from .uploads import authenticate_upload_token


class UploadTokenBackend:
    """``authenticate(request, username="__token__", password=<token>)``.

    Returns a :class:`PublisherPrincipal` (never a stored user), so sessions are not created
    for it: ``get_user`` always answers None.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> PublisherPrincipal | None:
        if username != TOKEN_USERNAME or password is None:
            return None
        return authenticate_upload_token(password)

    def get_user(self, user_id: Any) -> None:
        return None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return False
