"""The host integration: how the app talks to the index it is installed in.

The app never imports the host's models. It asks the class named in
``TRUSTED_PUBLISHING["HOST_INTEGRATION"]`` instead; subclass :class:`HostIntegration` and
override what your index knows better. Every method receives normalised project names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

    def project_key(self, name: str) -> str | None:
        """The host's own, never reused id of project ``name`` (its primary key, say), or None.

        A publisher's project is bound to it when first seen: if the project is deleted and
        somebody creates one of the same name, the publisher (and every token minted before) no
        longer covers it. None (the default) disables the check.
        """
        return None

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


class ProjectModelIntegration(HostIntegration):
    """Ready-made integration for the common case: the host has a Project model with a column
    holding PEP 503 normalised names. Configured by settings, no code::

        TRUSTED_PUBLISHING = {
            ...,
            "HOST_INTEGRATION": "trusted_publishing.integration.ProjectModelIntegration",
            "PROJECT_MODEL": "myindex.Project",
            "PROJECT_LOOKUP_FIELD": "normalized_name",  # PEP 503 normalised names
            "PROJECT_CREATE_FIELD": "name",              # set when a pending publisher creates one
            "PROJECT_ARCHIVED_FIELD": "archived",        # optional: True refuses uploads
        }

    or by the same names as class attributes of a subclass (``project_model = "..."``), which
    win over the settings. Subclass it to add what your index does when a project is created.
    """

    project_model: str | None = None
    project_lookup_field: str | None = None
    project_create_field: str | None = None
    project_archived_field: str | None = None

    def config(self, name: str) -> Any:
        """``project_model`` etc.: the class attribute, else the ``PROJECT_*`` setting."""
        from .conf import tp_settings

        value = getattr(self, f"project_{name}")
        return value if value is not None else getattr(tp_settings, f"PROJECT_{name.upper()}")

    def model(self) -> Any:
        from django.apps import apps

        return apps.get_model(self.config("model"))

    def _projects(self, name: str) -> Any:
        from .names import normalize_project_name

        lookup = {self.config("lookup_field"): normalize_project_name(name)}
        return self.model()._default_manager.filter(**lookup)

    def project_exists(self, name: str) -> bool:
        return self._projects(name).exists()

    def project_key(self, name: str) -> str | None:
        pk = self._projects(name).values_list("pk", flat=True).first()
        return None if pk is None else str(pk)

    def create_project(self, name: str, publisher: Publisher) -> None:
        from .names import is_valid_project_name

        if not is_valid_project_name(name):
            raise ValueError(f"{name!r} is not a valid project name")
        if self.project_exists(name):  # a pending publisher never takes over a project
            raise ValueError(f"A project named {name!r} already exists.")
        fields = {self.config("create_field"): name, self.config("lookup_field"): name}
        self.model()._default_manager.create(**fields)

    def may_upload(self, principal: PublisherPrincipal, name: str) -> bool:
        archived = self.config("archived_field")
        return not archived or not self._projects(name).filter(**{archived: True}).exists()
