"""Keep cached lookups honest: any change to an issuer, publisher or token drops its cache entry."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from . import cache as tp_cache
from .models import (
    ActiveStatePublisher,
    GitHubPublisher,
    GitLabPublisher,
    GooglePublisher,
    IssuedToken,
    Publisher,
    PublisherProject,
    TrustedIssuer,
)


@receiver(pre_save, sender=TrustedIssuer)
def _issuer_saving(sender: Any, instance: TrustedIssuer, **kwargs: Any) -> None:
    # An edited URL: the entry of the old one must go too, or tokens naming it would keep
    # verifying from the cache.
    if instance.pk is not None and not kwargs.get("raw"):
        instance._tp_previous_url = (  # type: ignore[attr-defined]
            TrustedIssuer.objects.filter(pk=instance.pk).values_list("url", flat=True).first()
        )


@receiver([post_save, post_delete], sender=TrustedIssuer)
def _issuer_changed(sender: Any, instance: TrustedIssuer, **kwargs: Any) -> None:
    tp_cache.forget_issuer(instance.url)
    previous = getattr(instance, "_tp_previous_url", None)
    if previous and previous != instance.url:
        tp_cache.forget_issuer(previous)


@receiver([post_save, post_delete], sender=IssuedToken)
def _token_changed(sender: Any, instance: IssuedToken, **kwargs: Any) -> None:
    # A token just created cannot be cached yet (its digest is new): skip the cache round trip
    # every mint would otherwise pay.
    if kwargs.get("created"):
        return
    tp_cache.forget_token(instance.digest)


def _publisher_changed(sender: Any, instance: Publisher, **kwargs: Any) -> None:
    tp_cache.forget_publisher_tokens(instance.pk)


for _model in (Publisher, GitHubPublisher, GitLabPublisher, GooglePublisher, ActiveStatePublisher):
    post_save.connect(_publisher_changed, sender=_model, dispatch_uid=f"tp-pub-{_model.__name__}")
    post_delete.connect(
        _publisher_changed, sender=_model, dispatch_uid=f"tp-pubd-{_model.__name__}"
    )


@receiver([post_save, post_delete], sender=PublisherProject)
def _publisher_project_changed(sender: Any, instance: PublisherProject, **kwargs: Any) -> None:
    tp_cache.forget_publisher_tokens(instance.publisher_id)
