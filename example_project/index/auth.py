"""Who is uploading: a trusted publisher's minted token, or an ordinary Django user.

The rule of this example index (document yours the same way):

* ``__token__`` + a minted token (``pypi-…``) → the trusted publisher behind it. It may upload only
  to the projects the token names, and only to projects that already exist (PyPI's rule: a
  non-user identity never creates a project; a *pending* publisher's exchange creates it first).
* any other user name + password → that Django user. Staff may upload anywhere; other users may
  upload to projects that list them as maintainers and may create new projects (becoming their
  maintainer), like on PyPI. Failed password logins are throttled per account and per client
  address (see :mod:`.throttle`); minted tokens are not.

Credentials are ``base64("username:password")``, decoded as UTF-8 or, failing that, as Latin-1
(what requests, and so twine, sends for a non-ASCII password). Anything else is a ``401``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import authenticate
from django.http import HttpRequest
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from trusted_publishing.authentication import UploadTokenAuthentication
from trusted_publishing.integration import get_integration
from trusted_publishing.principal import PublisherPrincipal

from . import throttle

INVALID_AUTH = "Invalid or non-existent authentication information."
MALFORMED_BASIC = (
    "Invalid or non-existent authentication information: the HTTP Basic credentials are not "
    "base64-encoded 'username:password'."
)


class NotAuthenticated(Exception):
    def __init__(self, reason: str = INVALID_AUTH) -> None:
        super().__init__(reason)
        self.reason = reason


class Throttled(NotAuthenticated):
    """Too many failed password logins for this account or address (→ 429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "There have been too many unsuccessful login attempts. You have been locked out for "
            f"{throttle.describe(retry_after)}. Please try again later."
        )
        self.retry_after = retry_after


@dataclass
class Uploader:
    user: Any = None
    principal: PublisherPrincipal | None = None

    @property
    def is_publisher(self) -> bool:
        return self.principal is not None

    @property
    def label(self) -> str:
        if self.principal is not None:
            return f"trusted publisher: {self.principal.publisher}"
        return self.user.get_username()


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        # ValueError: a header with non-ASCII characters (b64decode only takes ASCII text).
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise NotAuthenticated(MALFORMED_BASIC) from None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")  # requests (twine) encodes credentials as Latin-1
    username, sep, password = decoded.partition(":")
    if not sep:
        raise NotAuthenticated(MALFORMED_BASIC)
    return username, password


def _client_address(request: HttpRequest) -> str | None:
    try:
        # The host integration knows its proxies (REMOTE_ADDR by default).
        return get_integration().client_address(request)
    except Exception:  # a broken override must not open the throttle
        return request.META.get("REMOTE_ADDR") or None


def authenticate_uploader(request: HttpRequest) -> Uploader:
    """Return the uploader, or raise :class:`NotAuthenticated` (→ 401) or :class:`Throttled`
    (→ 429)."""
    # 1. The app's token authentication: answers for tokens with our prefix, None otherwise.
    try:
        result = UploadTokenAuthentication().authenticate(Request(request))
    except AuthenticationFailed as exc:
        # Expired, revoked or unknown minted token. The detail is client-safe by contract.
        raise NotAuthenticated(str(exc.detail)) from None
    if result is not None:
        principal, _token_id = result
        return Uploader(principal=principal)

    # 2. Ordinary Django users with HTTP Basic (twine -u/-p, uv --username/--password).
    credentials = _basic_credentials(request)
    if credentials is None:
        raise NotAuthenticated()
    username, password = credentials
    if username == "__token__":
        # A token that is not ours (wrong prefix): never try it as a password.
        raise NotAuthenticated()
    # Refuse before hashing anything once this account or address has failed too often.
    address = _client_address(request)
    wait = throttle.retry_after(username, address)
    if wait is not None:
        raise Throttled(wait)
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active or isinstance(user, PublisherPrincipal):
        throttle.record_failure(username, address)
        raise NotAuthenticated()
    return Uploader(user=user)
