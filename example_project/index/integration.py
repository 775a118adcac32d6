"""How the example index plugs into django-trusted-publishing.

The app's ready-made ``ProjectModelIntegration`` does the work (projects looked up by
``normalized_name``, ``archived`` refuses uploads). The example only names its model and adds
what it records when a pending publisher creates a project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trusted_publishing.integration import ProjectModelIntegration

from .models import Project

if TYPE_CHECKING:
    from trusted_publishing.models import Publisher


class IndexIntegration(ProjectModelIntegration):
    project_model = "index.Project"
    project_archived_field = "archived"

    def create_project(self, name: str, publisher: Publisher) -> None:
        super().create_project(name, publisher)
        Project.objects.filter(normalized_name=name).update(
            created_by=f"trusted publisher: {publisher}"[:200]
        )
