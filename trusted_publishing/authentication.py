"""DRF authentication for uploads: HTTP Basic ``__token__:<minted token>`` (or Bearer)."""

from __future__ import annotations

import base64
import binascii

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .permissions import UPLOAD_ONLY, view_accepts_upload_tokens
from .principal import PublisherPrincipal
from .uploads import authenticate_upload_token, looks_like_token

TOKEN_USERNAME = "__token__"


def credentials_from_header(header: str) -> tuple[str, str] | None:
    """(username, password) from an ``Authorization`` header value, or None."""
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        username, sep, password = decoded.partition(":")
        return (username, password) if sep else None
    if scheme in {"bearer", "token"} and value.strip():
        return TOKEN_USERNAME, value.strip()
    return None


class UploadTokenAuthentication(BaseAuthentication):
    """Authenticates minted upload tokens on views that accept them (see permissions.py) and
    refuses them everywhere else; leaves every other credential to the next class."""

    www_authenticate_realm = "upload"

    def authenticate(self, request: Request) -> tuple[PublisherPrincipal, int] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        creds = credentials_from_header(header)
        if creds is None:
            return None
        username, password = creds
        if username != TOKEN_USERNAME or not looks_like_token(password):
            return None
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if view is not None and not view_accepts_upload_tokens(view):
            # Safe by default: an upload token is never a login for the host's other views.
            raise exceptions.AuthenticationFailed(UPLOAD_ONLY, code="upload-only-credential")
        principal = authenticate_upload_token(password)
        if principal is None:
            raise exceptions.AuthenticationFailed(
                "Invalid or expired upload token: mint a new one through Trusted Publishing.",
                code="invalid-upload-token",
            )
        return principal, principal.token_id

    def authenticate_header(self, request: Request) -> str:
        return f'Basic realm="{self.www_authenticate_realm}"'
