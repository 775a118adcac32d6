"""Where a minted upload token may be used: only on views that say they accept it.

A minted token is a CI job's credential to upload files, nothing else. With
``UploadTokenAuthentication`` in ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` it would
otherwise be an authenticated user on every DRF view of the host. So the authentication class
(and the auth backend) refuse it on any view that does not declare, with one of:

* ``permission_classes = [UploadTokensAccepted, ...]`` on a DRF view;
* ``accepts_upload_tokens = True`` on a DRF or class-based view;
* ``@accepts_upload_tokens`` on a plain Django view function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rest_framework.permissions import BasePermission

F = TypeVar("F", bound=Callable[..., Any])

UPLOAD_ONLY = (
    "This is an upload-only credential (a Trusted Publishing token): it is accepted by the "
    "upload endpoint only."
)


class UploadTokensAccepted(BasePermission):
    """Declares that the view accepts minted upload tokens. Grants nothing by itself: combine
    it with your usual permissions (``IsAuthenticated``) and call ``authorize_upload`` for every
    file."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return True


def accepts_upload_tokens(view: F) -> F:
    """Decorator for a plain Django view function that accepts minted upload tokens."""
    view.accepts_upload_tokens = True  # type: ignore[attr-defined]
    return view


def view_accepts_upload_tokens(view: Any) -> bool:
    """True if ``view`` (a DRF view instance, a view class or a view function) declared it."""
    if getattr(view, "accepts_upload_tokens", False):
        return True
    for attribute in ("view_class", "cls"):  # as_view() functions of Django and DRF views
        declared = getattr(view, attribute, None)
        if declared is not None and view_accepts_upload_tokens(declared):
            return True
    permissions = getattr(view, "permission_classes", None) or ()
    return any(isinstance(p, type) and issubclass(p, UploadTokensAccepted) for p in permissions)
