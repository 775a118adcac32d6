"""The host integration: how the app talks to the index it is installed in.

The app never imports the host's models. It asks the class named in
``TRUSTED_PUBLISHING["HOST_INTEGRATION"]`` instead; subclass :class:`HostIntegration` and
override what your index knows better. Every method receives normalised project names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .models import Publisher
    from .principal import PublisherPrincipal


class HostIntegration:
    """Default for an index with no project model of its own.

    A project "exists" once an ordinary (non-pending) publisher is registered for it, and
    creating one for a pending publisher needs nothing from the host.
    """

    def project_exists(self, name: str) -> bool:
        from .models import PublisherProject

        return PublisherProject.objects.filter(
            name=name, publisher__pending_expires_at__isnull=True
        ).exists()

    def knows_projects(self) -> bool:
        """True when the host keeps its own project registry (it overrides ``project_exists``).

        Then an ordinary (non-pending) publisher can only be registered for a project the host
        has, tokens are minted and uploads authorised only for projects it still has, and a
        project is created only by a pending publisher's first exchange. The default
        integration *is* the registry (a project exists once a publisher names it), so these
        checks do not apply to it.
        """
        return type(self).project_exists is not HostIntegration.project_exists

    def missing_projects(self, names: list[str]) -> list[str]:
        """Those of ``names`` the host does not have (none when it keeps no registry)."""
        if not self.knows_projects():
            return []
        return [name for name in names if not self.project_exists(name)]

    def create_project(self, name: str, publisher: Publisher) -> None:
        """Create project ``name`` for a pending publisher's first exchange.

        Raise ``ValueError`` with a client-safe message to refuse (e.g. a prohibited name).
        Runs inside the exchange's transaction: a failure leaves nothing written.
        """

    def may_upload(self, principal: PublisherPrincipal, name: str) -> bool:
        """Host veto at upload time (archived or quarantined project, …)."""
        return True

    def is_upload_path(self, path: str) -> bool:
        """True if ``path`` is an upload URL path of this index (PEP 807 discovery)."""
        from .conf import tp_settings

        return path in tp_settings.UPLOAD_PATHS

    def client_address(self, request: HttpRequest) -> str | None:
        """The client's address for the audit trail (override behind a trusted proxy)."""
        return request.META.get("REMOTE_ADDR") or None


def get_integration() -> HostIntegration:
    from .conf import tp_settings

    return tp_settings.HOST_INTEGRATION()
