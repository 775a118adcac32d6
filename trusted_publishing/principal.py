"""The identity behind an upload made with a minted token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, EmptyManager, Group, Permission

from .models import Publisher


class PublisherPrincipal:
    """A user-like object for uploads authenticated by a minted token.

    It is authenticated but has no permissions of its own: the only thing it may do is upload to
    ``projects``, which the host checks with :func:`trusted_publishing.uploads.authorize_upload`.
    """

    is_active = True
    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None
    id = None
    _groups = EmptyManager(Group)
    _user_permissions = EmptyManager(Permission)

    def __init__(
        self,
        *,
        token_id: int,
        publisher: Publisher,
        projects: list[str],
        claims: dict[str, Any],
        single_use: bool,
        expires_at: datetime,
        issuer_url: str = "",
    ) -> None:
        self.token_id = token_id
        self.publisher = publisher
        self.projects = list(projects)
        self.claims = dict(claims)
        self.single_use = single_use
        self.expires_at = expires_at
        self.issuer_url = issuer_url

    @property
    def username(self) -> str:
        return f"trusted-publisher:{self.publisher.pk}"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return f"{self.publisher.describe()} (token #{self.token_id})"

    def __repr__(self) -> str:
        return f"<PublisherPrincipal publisher={self.publisher.pk} token={self.token_id}>"

    @property
    def groups(self) -> EmptyManager:
        return self._groups

    @property
    def user_permissions(self) -> EmptyManager:
        return self._user_permissions

    def get_all_permissions(self, obj: object = None) -> set[str]:
        return set()

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def has_perms(self, perm_list: Any, obj: object = None) -> bool:
        return False

    def has_module_perms(self, module: str) -> bool:
        return False

    def may_upload_to(self, project: str) -> bool:
        """Local check only (no database): is ``project`` among the token's projects?"""
        from .names import normalize_project_name

        return normalize_project_name(project) in self.projects

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a publisher principal is not stored")

    def delete(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a publisher principal is not stored")


__all__ = ["AnonymousUser", "PublisherPrincipal"]
