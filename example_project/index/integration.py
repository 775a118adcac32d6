"""How the example index plugs into django-trusted-publishing.

Named in settings: ``TRUSTED_PUBLISHING["HOST_INTEGRATION"] =
"example_project.index.integration.IndexIntegration"``. The app calls it with normalised names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trusted_publishing.integration import HostIntegration
from trusted_publishing.names import is_valid_project_name, normalize_project_name

from .models import Project

if TYPE_CHECKING:
    from trusted_publishing.models import Publisher
    from trusted_publishing.principal import PublisherPrincipal


class IndexIntegration(HostIntegration):
    def project_exists(self, name: str) -> bool:
        return Project.objects.filter(normalized_name=normalize_project_name(name)).exists()

    def create_project(self, name: str, publisher: Publisher) -> None:
        """A pending publisher's first exchange creates the project it was registered for.

        Runs inside the exchange's transaction, so a refusal (ValueError) leaves nothing behind.
        """
        if not is_valid_project_name(name):
            raise ValueError(f"{name!r} is not a valid project name.")
        if self.project_exists(name):
            # A pending publisher must never take over a project somebody already owns.
            raise ValueError(f"A project named {name!r} already exists.")
        Project.objects.create(name=name, created_by=f"trusted publisher: {publisher}"[:200])

    def may_upload(self, principal: PublisherPrincipal, name: str) -> bool:
        # Host veto: archived projects accept nothing, whatever the credential.
        return not Project.objects.filter(
            normalized_name=normalize_project_name(name), archived=True
        ).exists()
