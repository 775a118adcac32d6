"""Taking upload rights away is final: the live tokens they covered are revoked.

Disabling a publisher (or deleting it) and removing a project from it revoke the affected live
tokens, so enabling the publisher again, or adding the project back, does not bring a token
minted (or stolen) before back to life.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from .models import IssuedToken, Publisher, PublisherProject
from .models.publishers import PUBLISHER_MODELS


def revoke_live_tokens(publisher_id: int, reason: str, project: str | None = None) -> int:
    """Revoke the publisher's live tokens (only those covering ``project``, if given)."""
    from .exchange import revoke_token

    revoked = 0
    for token in IssuedToken.objects.live().filter(publisher_id=publisher_id):
        if project is None or project in token.projects:
            revoked += revoke_token(token, actor="system", reason=reason)
    return revoked


def _publisher_saved(sender: Any, instance: Publisher, raw: bool = False, **kwargs: Any) -> None:
    if not raw and not instance.enabled:
        revoke_live_tokens(instance.pk, "the publisher was disabled")


def _project_removed(sender: Any, instance: PublisherProject, **kwargs: Any) -> None:
    origin = kwargs.get("origin")
    if getattr(origin, "model", type(origin)) is not PublisherProject:
        return  # the publisher itself is being deleted: its tokens go with it
    revoke_live_tokens(
        instance.publisher_id,
        f"project {instance.name!r} was removed from the publisher",
        project=instance.name,
    )


for _model in (Publisher, *PUBLISHER_MODELS.values()):
    post_save.connect(_publisher_saved, sender=_model, dispatch_uid=f"tp-revoke-{_model.__name__}")
post_delete.connect(_project_removed, sender=PublisherProject, dispatch_uid="tp-revoke-project")
