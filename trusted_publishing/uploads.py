"""Upload authentication and authorisation for the host index.

The host calls :func:`authenticate_upload_token` (or uses the DRF class / auth backend built on
it) to turn ``__token__:<token>`` into a :class:`PublisherPrincipal`, then
:func:`authorize_upload` before it accepts a file. Both read the database, never a cache: a token
revoked, or a publisher disabled, deleted or no longer registered for the project, is refused by
the very next request in every worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import signals
from .conf import tp_settings
from .errors import UploadDenied
from .exchange import hash_token
from .integration import get_integration
from .models import AuditEvent, IssuedToken
from .names import normalize_project_name
from .principal import PublisherPrincipal

logger = logging.getLogger("trusted_publishing.uploads")

MAX_TOKEN_LENGTH = 512
#: PyPI's words for an upload by a trusted publisher to a project the index does not have.
NO_NEW_PROJECTS = (
    "Non-user identities cannot create new projects. This was probably caused by successfully "
    "using a pending publisher but specifying the project name incorrectly (either in the "
    "publisher or in your project's metadata). Please ensure that both match."
)


def looks_like_token(raw: object) -> bool:
    return (
        isinstance(raw, str)
        and raw.startswith(tp_settings.TOKEN_PREFIX)
        and len(raw) <= MAX_TOKEN_LENGTH
    )


@sensitive_variables()
def authenticate_upload_token(raw: object) -> PublisherPrincipal | None:
    """The principal for a live minted token of an enabled publisher, or None."""
    if not looks_like_token(raw):
        return None
    assert isinstance(raw, str)
    # Two indexed lookups (the token with its base publisher, then that publisher's provider
    # row): cheaper for the database to plan than one join of every provider's table.
    token = (
        IssuedToken.objects.live()
        .filter(digest=hash_token(raw), publisher__enabled=True)
        .select_related("publisher")
        .order_by()
        .first()
    )
    if token is None:
        return None
    return PublisherPrincipal(
        token_id=token.pk,
        publisher=token.publisher.specific,
        projects=token.projects,
        claims=token.claims,
        single_use=token.single_use,
        expires_at=token.expires_at,
        issuer_url=token.issuer_url,
    )


class _Refused(Exception):
    """Rolls back the use just recorded (see authorize_upload)."""


def _record_use(principal: PublisherPrincipal, project: str, record: Callable[..., object]) -> str:
    """Record one upload with the token if it may still upload to ``project``; else why not.

    The use is claimed with a single-table conditional update: its WHERE is re-checked against
    the committed row, so of two concurrent uploads with one single-use token exactly one
    matches. The publisher is then checked in the same transaction, and the claim undone if it
    may no longer upload.
    """
    now = timezone.now()
    live = IssuedToken.objects.live().filter(pk=principal.token_id)
    try:
        with transaction.atomic():
            if not live.update(used_at=Coalesce(F("used_at"), now)):
                token = IssuedToken.objects.filter(pk=principal.token_id).first()
                if token is None:
                    return "the token's publisher was deleted"
                return {
                    "revoked": "the token was revoked",
                    "used": "this single-use token was already used for an upload",
                    "expired": "the token has expired",
                }.get(token.state, "the token can no longer be used")
            token = IssuedToken.objects.select_related("publisher").get(pk=principal.token_id)
            refusal = token.publisher.upload_refusal(project)
            if refusal:
                raise _Refused(refusal)
            token.last_used_at = now
            token.upload_count += 1
            token.save(update_fields=["used_at", "last_used_at", "upload_count"])
            record("", within_own_block=True)  # committed with the use it records
    except _Refused as exc:
        return str(exc)
    return ""


def record_decision(*, within_own_block: bool = False, **fields: Any) -> AuditEvent:
    """Write an upload decision's audit event so that it survives the host's transaction.

    Hosts call ``authorize_upload`` inside the transaction that stores the file, and a host
    whose view lets ``UploadDenied`` (or any later error) propagate rolls that transaction back.
    So, inside a host's transaction, the event is written on a short-lived connection of its own
    (same database, autocommit). SQLite allows one writer at a time, so there (and should that
    connection fail) it is written in the caller's transaction.
    """
    alias = router.db_for_write(AuditEvent)
    if _inside_host_transaction(alias, skip=1 if within_own_block else 0):
        try:
            with _own_connection(alias) as own:
                return AuditEvent.objects.using(own).create(**fields)
        except Exception:
            logger.warning("audit connection unavailable; the event joins the caller's transaction")
    return AuditEvent.objects.create(**fields)


def _inside_host_transaction(alias: str, skip: int = 0) -> bool:
    """True inside a transaction the host opened (``skip``: innermost blocks that are ours)."""
    connection = connections[alias]
    blocks = connection.atomic_blocks[: len(connection.atomic_blocks) - skip]
    if connection.vendor == "sqlite" or not blocks:
        return False
    # Inside Django's TestCase the test's own transaction would hide a second connection's
    # rows from the test (and TestCase forbids other connections): stay in the caller's.
    return not any(getattr(block, "_from_testcase", False) for block in blocks)


@contextmanager
def _own_connection(alias: str) -> Iterator[str]:
    """A second connection to the same database for this thread, registered under a temporary
    alias and closed and forgotten after use (uploads are rare; nothing must linger in
    ``connections`` for checks or test runners to find)."""
    own = f"{alias}__trusted_publishing_audit_{threading.get_ident()}"
    connections.settings[own] = {**connections[alias].settings_dict, "AUTOCOMMIT": True}
    try:
        yield own
    finally:
        try:
            connections[own].close()
            del connections[own]
        finally:
            connections.settings.pop(own, None)


def authorize_upload(
    principal: PublisherPrincipal, project_name: str, request: HttpRequest | None = None
) -> PublisherPrincipal:
    """Allow ``principal`` to upload one file to ``project_name`` or raise UploadDenied."""
    project = normalize_project_name(project_name)
    integration = get_integration()
    publisher = principal.publisher
    recorded: list[str] = []

    def record(reason: str, *, within_own_block: bool = False) -> None:
        record_decision(
            within_own_block=within_own_block,
            kind=AuditEvent.Kind.UPLOAD_DENIED if reason else AuditEvent.Kind.UPLOAD_AUTHORISED,
            outcome=AuditEvent.Outcome.FAILURE if reason else AuditEvent.Outcome.SUCCESS,
            error_code="upload-denied" if reason else "",
            message=reason or f"upload to {project} authorised",
            issuer_url=principal.issuer_url,
            publisher_id=publisher.pk,
            publisher_label=publisher.describe()[:400],
            token_id=principal.token_id,
            projects=[project],
            claims=principal.claims,
            remote_addr=integration.client_address(request) if request is not None else None,
        )
        recorded.append(reason)

    if project not in principal.projects:
        reason = f"the token may not upload to project {project!r}"
    elif integration.missing_projects([project]):
        # A CI identity never creates a project (PyPI's rule); a pending publisher's first
        # exchange created its projects before the token was minted.
        reason = NO_NEW_PROJECTS
    elif not integration.may_upload(principal, project):
        reason = f"the index does not accept uploads to project {project!r}"
    else:
        reason = _record_use(principal, project, record)
    if reason or not recorded:
        record(reason)  # refusals: after the claim (if any) rolled back
    if reason:
        signals.upload_denied.send(
            sender=PublisherPrincipal,
            principal=principal,
            project=project,
            reason=reason,
            request=request,
        )
        raise UploadDenied(reason)
    signals.upload_authorised.send(
        sender=PublisherPrincipal, principal=principal, project=project, request=request
    )
    return principal


# --- for the host's upload view -----------------------------------------------------------------
def forbidden(reason: str) -> HttpResponse:
    """PyPI's answer to a refused upload: ``403`` with the reason in the status line (twine and
    uv print it) and as a plain-text body."""
    line = " ".join(reason.split())[:300].encode("latin-1", "replace").decode("latin-1")
    return HttpResponse(
        reason + "\n", status=403, reason=line, content_type="text/plain; charset=utf-8"
    )


def check_trusted_upload(
    request: Any,
    project_name: str,
    filename: str | None = None,
    *,
    principal: PublisherPrincipal | None = None,
) -> HttpResponse | None:
    """The one call an upload view makes for Trusted Publishing, inside the transaction that
    stores the file: ``None`` when the upload may go on (or is not made with a minted token:
    your own rules apply then), else the ``403`` to return.

    It authorises the upload (``authorize_upload``: the token's projects, revocation, expiry,
    the publisher, project existence, single use, the audit trail) and, given the uploaded
    file's name, checks that the file belongs to that project (PyPI: "Start filename for ...").
    """
    if principal is None:
        user = getattr(request, "user", None)
        principal = user if isinstance(user, PublisherPrincipal) else None
    if principal is None:
        return None
    project = normalize_project_name(project_name)
    if filename is not None:
        prefix = _distribution_name(filename)
        if prefix is None or normalize_project_name(prefix) != project:
            return forbidden(f"Start filename for {project_name!r} with {project!r}.")
    try:
        authorize_upload(principal, project, getattr(request, "_request", request))
    except UploadDenied as exc:
        return forbidden(exc.reason)
    return None


def _distribution_name(filename: str) -> str | None:
    """The distribution name a wheel's or sdist's file name starts with (PEP 427 / PEP 625)."""
    name = filename.rsplit("/", 1)[-1]
    if name.endswith(".whl"):
        return name.split("-", 1)[0] if name.count("-") >= 4 else None
    for suffix in (".tar.gz", ".zip"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            return stem.rsplit("-", 1)[0] if "-" in stem else None
    return None
