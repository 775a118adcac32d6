"""A Django authentication backend for minted upload tokens (for non-DRF upload views)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .authentication import TOKEN_USERNAME
from .permissions import view_accepts_upload_tokens
from .principal import PublisherPrincipal
from .uploads import authenticate_upload_token


class UploadTokenBackend:
    """``authenticate(request, username="__token__", password=<token>)``.

    Only on views that accept upload tokens (``@accepts_upload_tokens``, see permissions.py):
    elsewhere (the admin's login form, any other view calling ``authenticate()``) it answers
    None. Called without a request, it authenticates: the caller asked explicitly.

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
        match = getattr(request, "resolver_match", None) if request is not None else None
        if match is not None and not view_accepts_upload_tokens(match.func):
            return None  # an upload token is no login for the host's other views
        return authenticate_upload_token(password)

    def get_user(self, user_id: Any) -> None:
        return None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return False
