"""Operator operations behind ``manage.py trusted_publishing`` (usable from code, too).

Each function validates with the same forms as the admin, does one thing, and returns plain
data (dicts of str/int/bool/None/list) that the command prints as text or JSON. Failures raise
``CommandError`` with a message that names the fix. Nothing returned contains a token, a JWT or
a token digest.
"""

from __future__ import annotations

import getpass
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from .conf import tp_settings
from .forms import (
    TrustedIssuerForm,
    clean_project_name,
    default_issuer,
    identity_key_for,
    pending_conflicts,
    unknown_projects,
)
from .models import (
    AuditEvent,
    IssuedToken,
    KeySource,
    Publisher,
    PublisherProject,
    TrustedIssuer,
    UsedIdentityToken,
)
from .providers import PROVIDERS, CliOption, Split, publisher_relations

logger = logging.getLogger("trusted_publishing.cli")

ADD_ISSUER_HINT = "add it with `trusted_publishing add-issuer` or in admin → Trusted issuers"

#: The indexed column each purge set is selected by.
_PURGE_ORDER = {
    "used_identity_tokens": "expires_at",
    "issued_tokens": "expires_at",
    "audit_events": "created_at",
}
#: Rows deleted per transaction by `purge`.
PURGE_BATCH_SIZE = 1000


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _form_errors(form: Any) -> str:
    parts = []
    for field, errors in form.errors.items():
        label = "" if field == NON_FIELD_ERRORS else f"{field}: "
        parts.extend(f"{label}{message}" for message in errors)
    return "; ".join(parts)


def operator_login() -> str | None:
    """The login name of the user running the command (None if it cannot be told)."""
    try:
        return getpass.getuser() or None
    except (KeyError, OSError, ImportError):  # no passwd entry (containers), no pwd module
        return None


def cli_actor() -> str:
    login = operator_login()
    return f"cli:{login}" if login else "cli"


# --- issuers ------------------------------------------------------------------------------------
def issuer_data(issuer: TrustedIssuer, publishers: int | None = None) -> dict[str, Any]:
    kids = []
    if issuer.static_jwks:
        kids = [k.get("kid") for k in issuer.static_jwks.get("keys", []) if isinstance(k, dict)]
    return {
        "id": issuer.pk,
        "url": issuer.url,
        "provider": issuer.provider,
        "name": issuer.name,
        "key_source": issuer.key_source,
        "static_key_ids": kids,
        "enabled": issuer.enabled,
        "publishers": publishers if publishers is not None else issuer.publishers.count(),
    }


def add_issuer(
    *,
    provider: str,
    url: str,
    jwks_file: str | None = None,
    name: str | None = None,
    disable: bool = False,
    discovery: bool = False,
) -> dict[str, Any]:
    """Create the issuer with ``url``, or update it (e.g. pin a static JWKS)."""
    existing = TrustedIssuer.objects.filter(url=(url or "").strip()).first()
    data: dict[str, Any] = {
        "url": url,
        "provider": provider,
        "name": name if name is not None else (existing.name if existing else ""),
        "enabled": not disable,
        "key_source": existing.key_source if existing else KeySource.DISCOVERY,
        "static_jwks": json.dumps(existing.static_jwks)
        if existing and existing.static_jwks
        else "",
    }
    if jwks_file and discovery:
        raise CommandError("give either --jwks-file (static keys) or --discovery, not both")
    if jwks_file:
        try:
            data["static_jwks"] = Path(jwks_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(
                f"cannot read --jwks-file {jwks_file}: {exc.strerror or exc}; pass the path of "
                "the issuer's public JWKS (JSON)"
            ) from None
        data["key_source"] = KeySource.STATIC
    elif discovery:
        data["key_source"] = KeySource.DISCOVERY
        data["static_jwks"] = ""
    form = TrustedIssuerForm(data=data, instance=existing)
    if not form.is_valid():
        raise CommandError(f"issuer {url} not saved: {_form_errors(form)}")
    issuer = form.save()
    result = issuer_data(issuer)
    result["created"] = existing is None
    return result


def list_issuers(*, provider: str | None = None) -> list[dict[str, Any]]:
    from django.db.models import Count

    queryset = TrustedIssuer.objects.annotate(n=Count("publishers")).order_by("provider", "url")
    if provider:
        queryset = queryset.filter(provider=provider)
    return [issuer_data(issuer, issuer.n) for issuer in queryset]


def get_issuer(url: str) -> TrustedIssuer:
    issuer = TrustedIssuer.objects.filter(url=url).first()
    if issuer is None:
        raise CommandError(f"issuer {url} not trusted: {ADD_ISSUER_HINT}")
    return issuer


def refresh_keys(url: str) -> dict[str, Any]:
    from .errors import IssuerUnavailable
    from .keys import refresh_issuer_keys

    issuer = get_issuer(url)
    try:
        kids = refresh_issuer_keys(issuer)
    except IssuerUnavailable as exc:
        hint = (
            "check the static JWKS (admin → Trusted issuers, or add-issuer --jwks-file)"
            if issuer.key_source == KeySource.STATIC
            else "check that this host can reach the issuer's /.well-known/openid-configuration "
            "and jwks_uri (proxy, firewall, JWKS_CA_BUNDLE), or pin its keys with "
            "`trusted_publishing add-issuer --jwks-file`"
        )
        raise CommandError(f"keys of {url} could not be refreshed: {exc}; {hint}") from None
    return {
        "url": issuer.url,
        "key_source": issuer.key_source,
        "key_ids": kids,
        "enabled": issuer.enabled,
    }


# --- publishers ---------------------------------------------------------------------------------
def provider_options() -> list[CliOption]:
    """Every provider's ``add-publisher`` options, each name once (providers may share one)."""
    options: dict[str, CliOption] = {}
    for provider in PROVIDERS.values():
        for option in provider.cli_options:
            options.setdefault(option.name, option)
    return list(options.values())


def _split(value: str, option: str, split: Split) -> dict[str, str]:
    value = value.strip().strip("/")
    if "/" not in value:
        raise CommandError(f"--{option} must be {split.shape}, e.g. {split.example}")
    left, right = value.rsplit("/", 1) if split.at_last_slash else value.split("/", 1)
    return dict(zip(split.fields, (left, right), strict=True))


def publisher_form_data(provider: str, options: dict[str, Any]) -> dict[str, Any]:
    """Map command-line options to the provider form's fields."""
    spec = PROVIDERS.get(provider)
    if spec is None:
        raise CommandError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    data: dict[str, Any] = {}
    for option in spec.cli_options:
        value = options.get(option.dest)
        if option.required and not value:
            raise CommandError(f"--provider {provider} needs --{option.name}")
        if isinstance(option.field, Split):
            data.update(_split(str(value or ""), option.name, option.field))
        else:
            data[option.field] = str(value) if option.required else value or ""
    return data


def add_publisher(
    *,
    provider: str,
    projects: list[str],
    issuer_url: str | None = None,
    pending: bool = False,
    created_by: str | None = None,
    created_by_defaulted: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Register a publisher for ``projects`` (or add the projects to an identical one).

    ``created_by`` names the Django user (by username) recorded as the new publisher's creator.
    An unknown name is an error, unless ``created_by_defaulted`` says it was not asked for (the
    operator's login name filled in): then the creator stays empty and the result says so.
    """
    creator, creator_note = _creator(created_by, defaulted=created_by_defaulted)
    if not projects:
        raise CommandError("name at least one project with --project NAME")
    names = []
    for raw in projects:
        try:
            names.append(clean_project_name(raw))
        except ValidationError as exc:
            raise CommandError(f"--project: {' '.join(exc.messages)}") from None
    names = sorted(set(names))

    if issuer_url:
        issuer = get_issuer(issuer_url)
        if issuer.provider != provider:
            raise CommandError(
                f"issuer {issuer.url} is a {issuer.provider} issuer; use --provider "
                f"{issuer.provider} or pass a {provider} issuer with --issuer"
            )
    else:
        found = default_issuer(provider)
        if found is None:
            raise CommandError(
                f"no {provider} issuer is trusted: pass --issuer URL, or {ADD_ISSUER_HINT}"
            )
        issuer = found
    if not issuer.enabled:
        raise CommandError(
            f"issuer {issuer.url} is disabled: enable it in admin → Trusted issuers or re-run "
            "`trusted_publishing add-issuer` without --disable"
        )

    data = publisher_form_data(provider, options)
    data.update(issuer=issuer.pk, enabled="on")
    if pending:
        data["pending"] = "on"
    form_class = PROVIDERS[provider].form
    form = form_class(data=data)
    valid = form.is_valid()
    duplicate = form.has_error(NON_FIELD_ERRORS, code="duplicate")
    if not valid and not (
        duplicate and len(form.errors) == 1 and len(form.errors[NON_FIELD_ERRORS]) == 1
    ):
        raise CommandError(f"publisher not saved: {_form_errors(form)}")

    with transaction.atomic():
        if duplicate:
            publisher = (
                Publisher.objects.select_for_update()
                .get(identity_key=identity_key_for(form.instance))
                .specific
            )
            created = False
        else:
            if pending:
                existing = pending_conflicts(names)
                if existing:
                    raise CommandError(
                        f"project(s) {', '.join(existing)} already exist: a pending publisher only "
                        "creates new projects; drop --pending to register an ordinary publisher"
                    )
            if creator is not None:
                form.instance.created_by = creator
            publisher = form.save()
            created = True
        added = [n for n in names if n not in set(publisher.project_names())]
        missing = [] if publisher.is_pending else unknown_projects(added)
        if missing:  # rolls the whole command back
            raise CommandError(
                f"project(s) {', '.join(missing)} do not exist on this index: an ordinary "
                "publisher may only upload to existing projects; create the project first, or "
                "add --pending so that the first publish creates it"
            )
        publisher.add_projects(added)
    result = publisher_data(Publisher.objects.get(pk=publisher.pk))
    result.update(created=created, projects_added=added)
    if created and creator_note:
        result["created_by_note"] = creator_note
    if not created and pending != publisher.is_pending:
        state = "pending" if publisher.is_pending else "not pending"
        result["note"] = (
            f"publisher #{publisher.pk} already exists and is {state}; its state was not changed "
            "(change it in admin → the provider's publishers)"
        )
    return result


def _creator(login: str | None, *, defaulted: bool) -> tuple[Any, str | None]:
    """The user named ``login`` (or None) and, when the creator stays empty, why."""
    from django.contrib.auth import get_user_model

    if not login:
        if not defaulted:
            return None, None
        return None, (
            "created_by left empty: the operator's login name is unknown; pass --created-by "
            "USERNAME to record a user"
        )
    user_model = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: login}).first()
    if user is not None:
        return user, None
    if not defaulted:
        raise CommandError(
            f"--created-by: no user with username {login!r}; pass an existing username (see "
            "admin → Users) or create the user first"
        )
    return None, (
        f"created_by left empty: no user with username {login!r} (the operator's login name); "
        "pass --created-by USERNAME to record one"
    )


def _publisher_identity(specific: Publisher) -> dict[str, Any]:
    spec = PROVIDERS.get(specific.provider)
    fields = [*spec.identity_fields, *spec.bound_fields] if spec else []
    return {name: getattr(specific, name, None) for name in fields}


def publisher_state(publisher: Publisher) -> str:
    if not publisher.enabled:
        return "disabled"
    if publisher.pending_expires_at is not None:
        return "pending-expired" if publisher.pending_expired else "pending"
    return "active"


def publisher_data(publisher: Publisher, live_tokens: int | None = None) -> dict[str, Any]:
    specific = publisher.specific
    if live_tokens is None:
        live_tokens = IssuedToken.objects.filter(publisher=publisher).live().count()
    return {
        "id": publisher.pk,
        "provider": publisher.provider,
        "description": specific.describe() if specific is not publisher else str(publisher),
        "issuer": publisher.issuer.url,
        "identity": _publisher_identity(specific),
        "projects": publisher.project_names(),
        "state": publisher_state(publisher),
        "enabled": publisher.enabled,
        "pending_expires_at": _iso(publisher.pending_expires_at),
        "created_at": _iso(publisher.created_at),
        "created_by": publisher.created_by.get_username() if publisher.created_by_id else None,
        "last_used_at": _iso(publisher.last_used_at),
        "live_tokens": live_tokens,
    }


def list_publishers(
    *, provider: str | None = None, project: str | None = None, issuer_url: str | None = None
) -> list[dict[str, Any]]:
    from .admin import live_token_count_subquery

    queryset = (
        Publisher.objects.select_related("issuer", "created_by", *publisher_relations())
        .prefetch_related("projects")
        .annotate(_live=live_token_count_subquery())
        .order_by("pk")
    )
    if provider:
        queryset = queryset.filter(provider=provider)
    if project:
        queryset = queryset.filter(projects__name=_normalised(project)).distinct()
    if issuer_url:
        queryset = queryset.filter(issuer__url=issuer_url)
    return [publisher_data(p, p._live) for p in queryset]


def _normalised(project: str) -> str:
    try:
        return clean_project_name(project)
    except ValidationError as exc:
        raise CommandError(f"--project: {' '.join(exc.messages)}") from None


def set_publisher_enabled(ids: list[int], enabled: bool) -> list[dict[str, Any]]:
    publishers = _publishers(ids)
    results = []
    for pk in ids:
        publisher = publishers[pk]
        if publisher.enabled != enabled:
            publisher.enabled = enabled
            # save(), not update(): disabling fires the receiver that revokes its live tokens.
            publisher.save(update_fields=["enabled"])
        results.append(publisher_data(publisher))
    return results


def _publishers(ids: list[int]) -> dict[int, Publisher]:
    publishers = {p.pk: p for p in Publisher.objects.filter(pk__in=ids)}
    missing = [str(i) for i in ids if i not in publishers]
    if missing:
        raise CommandError(
            f"no publisher with id {', '.join(missing)}; see `trusted_publishing list-publishers`"
        )
    return publishers


def remove_publishers(ids: list[int]) -> list[dict[str, Any]]:
    """Delete publishers; their issued tokens (live or not) are deleted with them.

    Returns each publisher as it was, with ``tokens_deleted`` (all its issued tokens) added.
    Audit events about them stay, with their publisher and token emptied.
    """
    ids = list(dict.fromkeys(ids))
    actor = cli_actor()
    results = []
    with transaction.atomic():
        publishers = _publishers(ids)
        for pk in ids:
            publisher = publishers[pk]
            data = publisher_data(publisher)
            data["tokens_deleted"] = IssuedToken.objects.filter(publisher_id=pk).count()
            # Deleting the provider row takes the base row, its projects and its tokens along.
            publisher.specific.delete()
            results.append(data)
    for data in results:
        logger.info(
            "publisher #%s (%s; projects %s) removed by %s with %d token(s)",
            data["id"],
            data["description"],
            ", ".join(data["projects"]) or "none",
            actor,
            data["tokens_deleted"],
        )
    return results


def remove_projects(publisher_id: int, projects: list[str]) -> dict[str, Any]:
    """Remove projects from a publisher; the live tokens covering them are revoked (by the
    ``post_delete`` receiver). A publisher keeps at least one project."""
    if not projects:
        raise CommandError("name at least one project to remove")
    names = sorted({_normalised(raw) for raw in projects})
    with transaction.atomic():
        publisher = Publisher.objects.select_for_update().filter(pk=publisher_id).first()
        if publisher is None:
            raise CommandError(
                f"no publisher with id {publisher_id}; see `trusted_publishing list-publishers`"
            )
        current = publisher.project_names()
        unknown = [n for n in names if n not in current]
        if unknown:
            raise CommandError(
                f"publisher #{publisher_id} is not registered for {', '.join(unknown)}; its "
                f"projects are {', '.join(current) or 'none'}"
            )
        if set(current) <= set(names):
            raise CommandError(
                f"publisher #{publisher_id} would have no project left; remove the publisher "
                f"itself with `trusted_publishing remove-publisher {publisher_id}`"
            )
        live = IssuedToken.objects.filter(publisher_id=publisher_id).live()
        before = live.count()
        # A queryset delete sends post_delete for each row: the receiver revokes the tokens.
        PublisherProject.objects.filter(publisher_id=publisher_id, name__in=names).delete()
        revoked = before - live.count()
    result = publisher_data(Publisher.objects.get(pk=publisher_id))
    result.update(projects_removed=names, tokens_revoked=revoked)
    logger.info(
        "project(s) %s removed from publisher #%s by %s; %d live token(s) revoked",
        ", ".join(names),
        publisher_id,
        cli_actor(),
        revoked,
    )
    return result


# --- tokens -------------------------------------------------------------------------------------
def token_data(token: IssuedToken) -> dict[str, Any]:
    return {
        "id": token.pk,
        "publisher_id": token.publisher_id,
        "provider": token.publisher.provider,
        "subject": token.subject,
        "projects": list(token.projects or []),
        "state": token.state,
        "single_use": token.single_use,
        "created_at": _iso(token.created_at),
        "expires_at": _iso(token.expires_at),
        "upload_count": token.upload_count,
        "run_id": token.run_id,
        "revoked_at": _iso(token.revoked_at),
        "revoked_reason": token.revoked_reason,
    }


def list_tokens(
    *,
    live: bool = False,
    project: str | None = None,
    publisher_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    queryset = IssuedToken.objects.select_related("publisher").order_by("-created_at", "-pk")
    if live:
        queryset = queryset.live()
    if publisher_id is not None:
        queryset = queryset.filter(publisher_id=publisher_id)
    if project:
        name = _normalised(project)
        # JSON list of names: narrow in SQL by the quoted element, then check exactly.
        queryset = queryset.filter(projects__icontains=json.dumps(name))
        return [token_data(t) for t in queryset[: limit * 2] if name in t.projects][:limit]
    return [token_data(t) for t in queryset[:limit]]


def revoke_tokens(
    ids: list[int],
    *,
    publisher_id: int | None = None,
    reason: str = "revoked with manage.py trusted_publishing",
) -> dict[str, Any]:
    from .exchange import revoke_token

    if not ids and publisher_id is None:
        raise CommandError(
            "name token ids (see `trusted_publishing list-tokens`) or --publisher ID"
        )
    tokens = list(IssuedToken.objects.filter(pk__in=ids).select_related("publisher"))
    missing = sorted(set(ids) - {t.pk for t in tokens})
    if missing:
        raise CommandError(
            f"no issued token with id {', '.join(map(str, missing))}; see "
            "`trusted_publishing list-tokens`"
        )
    if publisher_id is not None:
        if not Publisher.objects.filter(pk=publisher_id).exists():
            raise CommandError(
                f"no publisher with id {publisher_id}; see `trusted_publishing list-publishers`"
            )
        tokens += list(
            IssuedToken.objects.filter(publisher_id=publisher_id)
            .live()
            .exclude(pk__in=ids)
            .select_related("publisher")
        )
    actor = cli_actor()
    revoked, skipped = [], []
    for token in tokens:
        if token.state == "live" and revoke_token(token, actor=actor, reason=reason):
            revoked.append(token.pk)
        else:
            skipped.append({"id": token.pk, "state": token.state})
    return {"revoked": revoked, "not_live": skipped}


# --- housekeeping -------------------------------------------------------------------------------
def purge(
    *,
    token_days: int = 7,
    events_older_than: int | None = None,
    dry_run: bool = False,
    batch_size: int = PURGE_BATCH_SIZE,
) -> dict[str, Any]:
    """Delete rows that can no longer matter; returns how many of each (would be) deleted.

    Audit events older than ``events_older_than`` days go too (default: the
    ``AUDIT_RETENTION_DAYS`` setting; None keeps them). Rows are deleted in batches of
    ``batch_size``, each its own short transaction, so mints and uploads go on meanwhile.
    """
    if events_older_than is None:
        events_older_than = tp_settings.AUDIT_RETENTION_DAYS
    if token_days < 0 or (events_older_than is not None and events_older_than < 0):
        raise CommandError("day counts must be 0 or more")
    if batch_size < 1:
        raise CommandError("the batch size must be 1 or more")
    now = timezone.now()
    sets: dict[str, Any] = {
        "used_identity_tokens": UsedIdentityToken.objects.filter(expires_at__lt=now),
        "issued_tokens": IssuedToken.objects.filter(
            expires_at__lt=now - timedelta(days=token_days)
        ),
        "expired_pending_publishers": Publisher.objects.filter(pending_expires_at__lte=now),
    }
    if events_older_than is not None:
        sets["audit_events"] = AuditEvent.objects.filter(
            created_at__lt=now - timedelta(days=events_older_than)
        )
    counts: dict[str, int] = {}
    for label, queryset in sets.items():
        # Count the rows asked for, not the child/project rows a cascade also removes.
        if dry_run:
            counts[label] = queryset.count()
            continue
        counts[label] = 0
        # Walk the index the filter uses (expiry or time), not the primary key.
        order = _PURGE_ORDER.get(label, "pk")
        while True:
            with transaction.atomic():
                batch = list(queryset.order_by(order).values_list("pk", flat=True)[:batch_size])
                if batch:
                    queryset.model.objects.filter(pk__in=batch).delete()
            counts[label] += len(batch)
            if len(batch) < batch_size:
                break
    return {
        "dry_run": dry_run,
        "deleted": counts,
        "token_days": token_days,
        "events_older_than": events_older_than,
    }
