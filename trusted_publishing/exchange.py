"""The token exchange: a verified identity token in, a short-lived upload token out.

1. ``verify_identity_token`` (verification.py): trusted issuer, key, signature, standard claims;
2. ``find_publisher``: the provider's required claims, then the most specific publisher that can
   mint and whose claim rules (providers/<provider>.py) all accept the token;
3. ``_mint``, one ``transaction.atomic()``: the identity token is recorded as used first (a
   unique key, so a concurrent replay fails before anything else is written), a pending
   publisher's projects are created, immutable ids are bound, and the token and its audit event
   are created.

Any failure rolls the transaction back, so nothing is half-written, and is recorded as an
``exchange.failed`` audit event afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import signals
from .cache import cache_key, get_cache
from .conf import is_enabled, tp_settings
from .errors import ErrorCode, TrustedPublishingError
from .integration import get_integration
from .models import AuditEvent, CreatedProject, IssuedToken, Publisher, UsedIdentityToken
from .models.events import without_nul
from .models.publishers import PROJECT_RECREATED
from .providers import ClaimMismatch, get_rules
from .providers.base import safe_claims
from .verification import MAX_NUMERIC_DATE, verify_identity_token

logger = logging.getLogger("trusted_publishing.exchange")

FEATURES = ("single-use-token", "multi-use-token")
#: Kept past the identity token's expiry so a replay can never outlive its record.
REPLAY_MARGIN = 5
#: "Last used" is kept to the minute: a release storm does not rewrite the publisher row.
LAST_USED_RESOLUTION = 60


@dataclass(frozen=True)
class MintResult:
    token: str = field(repr=False)
    expires: int
    issued: IssuedToken


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    # 32 random bytes = 256 bits, URL-safe, behind a recognisable prefix for secret scanners.
    return f"{tp_settings.TOKEN_PREFIX}{secrets.token_urlsafe(32)}"


def client_address(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    try:
        return get_integration().client_address(request)
    except Exception:  # an integration bug must not break the audit trail
        return None


def single_use_requested(features: list[str] | None) -> bool:
    """``features`` as validated by the request serializer; none named: the default."""
    if not features:
        return tp_settings.DEFAULT_FEATURE == "single-use-token"
    return "single-use-token" in features


# --- publisher matching -----------------------------------------------------------------------
def find_publisher(
    issuer: Any, claims: dict[str, Any], packages: list[str] | None = None
) -> tuple[Publisher, list[str]]:
    """The most specific publisher that can mint, whose rules all accept ``claims`` and that
    covers every requested package, with its projects."""
    rules = get_rules(issuer.provider)
    missing = rules.missing_claims(claims)
    if missing:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PUBLISHER,
            f"token lacks claim(s) required for {issuer.provider}: {', '.join(missing)}",
            claims=claims,
            issuer_url=issuer.url,
        )
    subject = rules.subject(claims)
    candidates = []
    if "\x00" not in subject:  # else it matches no publisher; PostgreSQL would reject the query
        candidates = list(
            rules.model.objects.filter(
                issuer=issuer, subject=subject, enabled=True
            ).prefetch_related("projects")
        )
    candidates.sort(key=rules.specificity, reverse=True)
    reasons: list[str] = []
    expired_pending = False
    for candidate in candidates:
        if not candidate.can_mint:  # an expired pending publisher must not hide a working one
            expired_pending = True
            continue
        projects = sorted(p.name for p in candidate.projects.all())
        if projects and not candidate.is_pending:
            recreated = [p.name for p in candidate.projects.all() if p.host_project_changed()]
            for name in recreated:
                reasons.append(PROJECT_RECREATED.format(project=name))
            projects = [p for p in projects if p not in recreated]
            gone = get_integration().missing_projects(projects)
            if gone:  # deleted on the host: this publisher no longer covers them
                reasons.append(
                    f"project(s) {', '.join(gone)} of publisher {candidate.describe()!r} no longer "
                    "exist on this index"
                )
                projects = [p for p in projects if p not in gone]
        if not projects:
            reasons.append(f"publisher {candidate.describe()!r} is not registered for any project")
            continue
        try:
            rules.verify(candidate, claims, issuer)
        except ClaimMismatch as exc:
            reasons.append(exc.message)
            continue
        outside = [p for p in packages or () if p not in projects]
        if outside:
            reasons.append(
                f"publisher {candidate.describe()!r} may not publish {', '.join(outside)}"
            )
            continue
        return candidate, packages or projects
    code = ErrorCode.INVALID_PUBLISHER
    if expired_pending and not reasons:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PENDING_PUBLISHER,
            "this pending publisher has expired; ask an operator to register it again",
            claims=claims,
            issuer_url=issuer.url,
        )
    if reasons:
        detail = "; ".join(dict.fromkeys(reasons))
        description = f"valid token, but no publisher for {subject!r} accepts it: {detail}"
        if packages and all("may not publish" in r for r in reasons):
            code = ErrorCode.PACKAGE_NOT_AUTHORISED
    else:
        description = (
            f"valid token, but no trusted publisher is registered for {subject!r} with issuer "
            f"{issuer.url!r}"
        )
    raise TrustedPublishingError(code, description, claims=claims, issuer_url=issuer.url)


def replay_key(issuer_url: str, claims: dict[str, Any], signed_part: str) -> str:
    """The identity token's replay key: its ``jti``, else what its signature covers
    (``header.payload``): never the signature, which can have several valid encodings (ECDSA's
    (r, n - s)), so a re-encoded signature is still the same token."""
    jti = claims.get("jti")
    material = f"jti\x00{jti}" if isinstance(jti, str) and jti else f"tok\x00{signed_part}"
    raw = f"{issuer_url}\x00{material}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


# --- the exchange ----------------------------------------------------------------------------
@sensitive_variables()
def exchange(
    raw_token: Any,
    *,
    features: list[str] | None = None,
    packages: list[str] | None = None,
    request: HttpRequest | None = None,
) -> MintResult:
    """Exchange an identity token for an upload token. Raises TrustedPublishingError.

    ``features`` and ``packages`` are the request's lists as validated by
    :class:`~trusted_publishing.serializers.MintRequestSerializer` (packages normalised).
    """
    issuer: Any = None
    claims: dict[str, Any] = {}
    publisher: Publisher | None = None
    try:
        if not is_enabled():
            raise TrustedPublishingError(
                ErrorCode.NOT_ENABLED, "trusted publishing is not enabled on this index"
            )
        verified = verify_identity_token(raw_token)
        issuer, claims = verified.issuer, verified.claims
        publisher, projects = find_publisher(issuer, claims, packages)
        return _mint(
            publisher,
            projects,
            issuer,
            claims,
            verified.signing_input,
            single_use_requested(features),
            request,
        )
    except TrustedPublishingError as exc:
        exc.issuer_url = exc.issuer_url or (issuer.url if issuer is not None else "")
        exc.claims = exc.claims or claims
        exc.publisher = exc.publisher or publisher
        record_failure(exc, request)
        raise


@sensitive_variables()
def _mint(
    publisher: Publisher,
    projects: list[str],
    issuer: Any,
    claims: dict[str, Any],
    signed_part: str,
    single_use: bool,
    request: HttpRequest | None,
) -> MintResult:
    rules = get_rules(issuer.provider)
    now = timezone.now()
    exp = claims.get("exp")  # required by verification: a number within MAX_NUMERIC_DATE
    replay_until = (
        min(int(exp) + int(tp_settings.JWT_LEEWAY) + REPLAY_MARGIN, MAX_NUMERIC_DATE)
        if isinstance(exp, int | float)
        else int((now + timedelta(hours=6)).timestamp())
    )
    lifetime = int(tp_settings.TOKEN_LIFETIME)
    token = new_token()
    # NUL-free once for both rows that store it (PostgreSQL refuses NUL in jsonb).
    snapshot = without_nul(rules.snapshot(claims))
    key = replay_key(issuer.url, claims, signed_part)
    reified: list[str] = []
    try:
        with transaction.atomic():
            # First: a concurrent exchange of the same identity token blocks on this unique key
            # and then fails, so nothing below runs for a replay.
            UsedIdentityToken.objects.create(
                key=key,
                issuer_url=issuer.url,
                expires_at=datetime.fromtimestamp(replay_until, tz=UTC),
            )
            if publisher.is_pending:
                reified = _reify(publisher, issuer.url)
            bindings = rules.bindings(publisher, claims)
            last = publisher.last_used_at
            if bindings or last is None or (now - last).total_seconds() > LAST_USED_RESOLUTION:
                _update_publisher(publisher, bindings, now)
            issued = IssuedToken.objects.create(
                digest=hash_token(token),
                publisher=publisher,
                projects=projects,
                single_use=single_use,
                created_at=now,
                expires_at=now + timedelta(seconds=lifetime),
                issuer_url=issuer.url,
                subject=rules.subject(claims)[:400],
                run_id=rules.run_id(claims),
                claims=snapshot,
            )
            AuditEvent.objects.create(
                created_at=now,
                kind=AuditEvent.Kind.TOKEN_MINTED,
                outcome=AuditEvent.Outcome.SUCCESS,
                message=f"{'single' if single_use else 'multi'}-use token for "
                f"{', '.join(projects)}, valid {lifetime} s",
                issuer_url=issuer.url,
                publisher=publisher,
                publisher_label=publisher.describe()[:400],
                token=issued,
                projects=projects,
                claims=snapshot,
                remote_addr=client_address(request),
            )
    except IntegrityError:
        if UsedIdentityToken.objects.filter(pk=key).exists():
            raise TrustedPublishingError(
                ErrorCode.INVALID_REUSE_TOKEN,
                "this identity token was already exchanged; request a new one",
                publisher=publisher,
            ) from None
        raise

    def notify() -> None:
        if reified:
            signals.publisher_reified.send(sender=Publisher, publisher=publisher, projects=reified)
        signals.token_minted.send(
            sender=IssuedToken, token=issued, publisher=publisher, claims=snapshot, request=request
        )

    transaction.on_commit(notify)
    logger.info(
        "minted token #%s for publisher #%s (%s) projects=%s",
        issued.pk,
        publisher.pk,
        publisher.describe(),
        ",".join(projects),
    )
    return MintResult(token=token, expires=int(issued.expires_at.timestamp()), issued=issued)


def _update_publisher(publisher: Publisher, bindings: dict[str, str], now: datetime) -> None:
    """Bind immutable ids on first use and stamp "last used", with the publisher row locked.

    The base row is always locked first (here, and by ``_reify``), so concurrent exchanges of
    one publisher queue on it instead of deadlocking over its two tables. Under the lock the ids
    are re-read: of two concurrent "first" exchanges only one binds, and the other is refused
    unless it carries the very same ids (a resurrected account racing the real one cannot
    overwrite the binding).
    """
    locked = Publisher.objects.select_for_update().filter(pk=publisher.pk)
    last_used = locked.values_list("last_used_at", flat=True).first()
    changed: list[str] = []
    if bindings:
        current = type(publisher).objects.filter(pk=publisher.pk).values(*bindings).first() or {}
        if any(current.get(name) and current[name] != value for name, value in bindings.items()):
            raise TrustedPublishingError(
                ErrorCode.INVALID_PUBLISHER,
                "valid token, but a concurrent exchange bound this publisher to different "
                f"immutable ids ({', '.join(sorted(bindings))}); refusing",
                publisher=publisher,
            )
        for name, value in bindings.items():
            setattr(publisher, name, value)
            if not current.get(name):
                changed.append(name)
    if last_used is None or (now - last_used).total_seconds() > LAST_USED_RESOLUTION:
        publisher.last_used_at = now
        changed.append("last_used_at")
    if changed:
        publisher.save(update_fields=changed)


def _claim_creation(publisher: Publisher, name: str) -> None:
    """Record that ``publisher`` creates project ``name``, or refuse.

    The unique insert makes concurrent first exchanges of two pending publishers for one name
    wait for each other: the second fails once the first commits. A name whose earlier creation
    the host no longer knows (the project was deleted) may be created again: its row is locked
    and handed over, so that too happens once.
    """
    try:
        with transaction.atomic():
            CreatedProject.objects.create(name=name, publisher=publisher)
        return
    except IntegrityError:
        pass
    earlier = CreatedProject.objects.select_for_update().get(name=name)
    if get_integration().project_exists(name):
        raise TrustedPublishingError(
            ErrorCode.INVALID_PENDING_PUBLISHER,
            f"valid token, but project {name!r} was already created by another publisher; a "
            "pending publisher cannot take over an existing project",
            publisher=publisher,
        )
    earlier.publisher = publisher
    earlier.save(update_fields=["publisher"])


def _reify(publisher: Publisher, issuer_url: str) -> list[str]:
    """First exchange of a pending publisher: create its projects, make it ordinary.

    The publisher row is locked and re-read first, so of concurrent first exchanges exactly one
    creates the projects; the others wait and then mint as an ordinary publisher.
    """
    locked = Publisher.objects.select_for_update().filter(pk=publisher.pk).first()
    if locked is None or locked.pending_expires_at is None:
        publisher.pending_expires_at = None
        return []
    if publisher.pending_expired:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PENDING_PUBLISHER,
            "this pending publisher has expired; ask an operator to register it again",
            publisher=publisher,
        )
    integration = get_integration()
    names = publisher.project_names()
    for name in names:
        _claim_creation(publisher, name)
        if integration.project_exists(name):
            raise TrustedPublishingError(
                ErrorCode.INVALID_PENDING_PUBLISHER,
                f"valid token, but project {name!r} already exists; a pending publisher cannot "
                "take over an existing project",
                publisher=publisher,
            )
        try:
            integration.create_project(name, publisher)
        except ValueError as exc:
            raise TrustedPublishingError(
                ErrorCode.INVALID_PENDING_PUBLISHER,
                f"project {name!r} could not be created: {exc}",
                publisher=publisher,
            ) from None
    for row in publisher.projects.all():
        row.host_project_changed()  # binds each to the project just created
    publisher.pending_expires_at = None
    publisher.save(update_fields=["pending_expires_at"])
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.PUBLISHER_REIFIED,
        outcome=AuditEvent.Outcome.SUCCESS,
        message=f"pending publisher created project(s) {', '.join(names)}",
        issuer_url=issuer_url,
        publisher=publisher,
        publisher_label=publisher.describe()[:400],
        projects=names,
    )
    return names


# --- audit of failures --------------------------------------------------------------------------
AUDITED_CLAIMS = (
    "iss",
    "aud",
    "sub",
    "repository",
    "repository_owner",
    "repository_owner_id",
    "repository_id",
    "workflow_ref",
    "job_workflow_ref",
    "ref",
    "sha",
    "environment",
    "event_name",
    "run_id",
    "actor",
    "project_path",
    "namespace_id",
    "project_id",
    "ci_config_ref_uri",
    "ref_path",
    "pipeline_id",
    "email",
    "organization",
    "project",
    "actor_id",
)


def record_failure(exc: TrustedPublishingError, request: HttpRequest | None) -> None:
    """Audit a refused exchange (sampled when no verified identity came with it), log it and
    send ``exchange_failed``."""
    claims = safe_claims(exc.claims, AUDITED_CLAIMS) if exc.claims else {}
    publisher = exc.publisher if isinstance(exc.publisher, Publisher) else None
    nth = 1 if claims else _unverified_refusal_number(exc.code)
    if nth is not None:
        message = exc.description
        if nth > 1:
            message = f"[{nth}th unverified refusal with this code this minute] {message}"
        try:
            AuditEvent.objects.create(
                kind=AuditEvent.Kind.EXCHANGE_FAILED,
                outcome=AuditEvent.Outcome.FAILURE,
                error_code=exc.code.value,
                message=message[:2000],
                issuer_url=exc.issuer_url[:400],
                publisher=publisher,
                publisher_label=publisher.describe()[:400] if publisher else "",
                claims=claims,
                remote_addr=client_address(request),
            )
        except Exception:  # the audit trail must never turn a 4xx into a 500
            logger.exception("could not record a failed exchange")
    logger.info("exchange refused: %s: %s", exc.code.value, exc.description)
    signals.exchange_failed.send(
        sender=TrustedPublishingError,
        code=exc.code.value,
        description=exc.description,
        issuer_url=exc.issuer_url,
        claims=claims,
        request=request,
    )


def _unverified_refusal_number(code: ErrorCode) -> int | None:
    """Count a refusal that carries no verified identity; its number this minute if it is to be
    written (the 1st, 10th, 100th, ...), None if it is only counted."""
    if not tp_settings.AUDIT_SAMPLE_UNVERIFIED:
        return 1
    key = cache_key("refusals", f"{code.value}:{int(timezone.now().timestamp()) // 60}")
    cache = get_cache()
    try:
        cache.add(key, 0, 120)
        nth = cache.incr(key)
    except ValueError:  # expired between add and incr: a new minute
        return 1
    return nth if nth > 0 and str(nth).rstrip("0") == "1" else None


# --- revocation ---------------------------------------------------------------------------------
def revoke_token(
    token: IssuedToken, actor: str, reason: str, *, kind: str = AuditEvent.Kind.TOKEN_REVOKED
) -> bool:
    """Revoke ``token`` now. Returns False if it was already revoked."""
    with transaction.atomic():
        current = IssuedToken.objects.select_for_update().filter(pk=token.pk).first()
        if current is None or current.revoked_at is not None:
            return False
        current.revoked_at, current.revoked_reason = timezone.now(), reason[:200]
        current.save(update_fields=["revoked_at", "revoked_reason"])
        token.revoked_at, token.revoked_reason = current.revoked_at, current.revoked_reason
        AuditEvent.objects.create(
            kind=kind,
            outcome=AuditEvent.Outcome.SUCCESS,
            message=reason[:2000],
            issuer_url=token.issuer_url,
            publisher_id=token.publisher_id,
            token=token,
            projects=token.projects,
            actor=actor[:200],
        )
    signals.token_revoked.send(sender=IssuedToken, token=token, actor=actor, reason=reason)
    return True


def burn_token(raw: Any, request: HttpRequest | None = None) -> bool:
    """A client's "I'm done with this token" call. Never reveals whether the token existed."""
    if not isinstance(raw, str) or not raw.startswith(tp_settings.TOKEN_PREFIX) or len(raw) > 512:
        return False
    token = IssuedToken.objects.filter(digest=hash_token(raw)).live().first()
    if token is None:
        return False
    return revoke_token(
        token,
        actor="client",
        reason="burned by the client after use",
        kind=AuditEvent.Kind.TOKEN_BURNED,
    )
