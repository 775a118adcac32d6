"""The token exchange: a verified identity token in, a short-lived upload token out.

Flow (network first, then one short transaction):

1. verify the JWT (verification.py: issuer allowlist, key, signature, standard claims);
2. check the provider's required claims, find candidate publishers for the token's subject
   (one indexed query) and keep the most specific one whose claim rules all pass;
3. in one transaction: create the project of a pending publisher, record the identity token as
   used (a unique insert, so concurrent replays lose), bind immutable ids, store the minted
   token's digest and write the audit event.

Any failure rolls the transaction back, so nothing is half-written, and is recorded as an
``exchange.failed`` audit event afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.http import HttpRequest
from django.utils import timezone

from . import fastsql, signals
from .conf import is_enabled, tp_settings
from .errors import ErrorCode, TrustedPublishingError
from .integration import get_integration
from .models import AuditEvent, IssuedToken, Publisher, PublisherProject, UsedIdentityToken
from .models.events import without_nul
from .names import normalize_project_name
from .providers import ClaimMismatch, get_rules
from .providers.base import safe_claims
from .verification import MAX_NUMERIC_DATE, verify_identity_token

logger = logging.getLogger("trusted_publishing.exchange")

FEATURES = ("single-use-token", "multi-use-token")
#: Kept past the identity token's expiry so a replay can never outlive its record.
REPLAY_MARGIN = 5
MAX_PACKAGES = 100
LAST_USED_RESOLUTION = 60


@dataclass(frozen=True)
class MintResult:
    token: str
    expires: int
    token_id: int
    _load: Callable[[], IssuedToken] = field(repr=False, compare=False)

    @functools.cached_property
    def issued(self) -> IssuedToken:
        """The token's row (built on first access, without a query)."""
        return self._load()


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    # 32 random bytes = 256 bits, URL-safe, behind a recognisable prefix for secret scanners.
    return f"{tp_settings.TOKEN_PREFIX}{secrets.token_urlsafe(32)}"


def _client_address(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    try:
        return get_integration().client_address(request)
    except Exception:  # an integration bug must not break the audit trail
        return None


# --- request validation -----------------------------------------------------------------------
def _parse_features(features: Any) -> bool:
    """Return True for a single-use token."""
    if features is None:
        return tp_settings.DEFAULT_FEATURE == "single-use-token"
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD, "'features' must be a list of strings"
        )
    unknown = sorted({f for f in features if f not in FEATURES})
    if unknown:
        raise TrustedPublishingError(
            ErrorCode.UNSUPPORTED_FEATURE,
            f"unsupported feature(s) {', '.join(repr(u[:50]) for u in unknown[:5])}; this index "
            f"supports {', '.join(FEATURES)}",
        )
    if "single-use-token" in features and "multi-use-token" in features:
        raise TrustedPublishingError(
            ErrorCode.UNSUPPORTED_FEATURE,
            "'single-use-token' and 'multi-use-token' cannot be requested together",
        )
    if not features:
        return tp_settings.DEFAULT_FEATURE == "single-use-token"
    return "single-use-token" in features


def _parse_packages(packages: Any) -> list[str] | None:
    if packages is None:
        return None
    if (
        not isinstance(packages, list)
        or not packages
        or len(packages) > MAX_PACKAGES
        or not all(isinstance(p, str) and 0 < len(p) <= 200 for p in packages)
    ):
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD,
            f"'packages' must be a non-empty list of at most {MAX_PACKAGES} project names",
        )
    return sorted({normalize_project_name(p) for p in packages})


# --- publisher matching -----------------------------------------------------------------------
def find_publisher(issuer: dict[str, Any], claims: dict[str, Any]) -> tuple[Publisher, list[str]]:
    """The most specific enabled publisher whose rules all accept ``claims``, and its projects."""
    rules = get_rules(issuer["provider"])
    missing = rules.missing_claims(claims)
    if missing:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PUBLISHER,
            f"token lacks claim(s) required for {issuer['provider']}: {', '.join(missing)}",
            claims=claims,
            issuer_url=issuer["url"],
        )
    subject = rules.subject(claims)
    # One indexed query returns the candidate publishers (provider row included) with their
    # projects; a publisher without projects could not mint anyway.
    candidates: dict[int, tuple[Publisher, list[str]]] = {}
    if "\x00" not in subject:  # else it matches no publisher; PostgreSQL would reject the query
        # A prebuilt statement (fastsql.py): compiling the ORM query cost more than running it.
        rows = fastsql.publisher_candidates(rules.model, issuer["pk"], subject)
        if rows is None:  # a database without prebuilt statements: the equivalent ORM query
            child = rules.model._meta.model_name
            rows = [
                (getattr(row.publisher, child, None), row.name)
                for row in PublisherProject.objects.filter(
                    publisher__issuer_id=issuer["pk"],
                    publisher__subject=subject,
                    publisher__enabled=True,
                ).select_related(f"publisher__{child}")
            ]
        for specific, name in rows:
            if specific is None:
                continue
            candidates.setdefault(specific.pk, (specific, []))[1].append(name)
    ordered = sorted(candidates.values(), key=lambda c: rules.specificity(c[0]), reverse=True)
    reasons: list[str] = []
    for candidate, projects in ordered:
        try:
            rules.verify(candidate, claims, issuer)
        except ClaimMismatch as exc:
            reasons.append(exc.message)
            continue
        return candidate, sorted(projects)
    if reasons:
        detail = "; ".join(dict.fromkeys(reasons))
        description = f"valid token, but no publisher for {subject!r} accepts it: {detail}"
    else:
        description = (
            f"valid token, but no trusted publisher is registered for {subject!r} with issuer "
            f"{issuer['url']!r}"
        )
    raise TrustedPublishingError(
        ErrorCode.INVALID_PUBLISHER, description, claims=claims, issuer_url=issuer["url"]
    )


def replay_key(issuer_url: str, claims: dict[str, Any], signed_part: str) -> str:
    """The identity token's replay key: its ``jti``, else what its signature covers
    (``header.payload``): never the signature, which can have several valid encodings (ECDSA's
    (r, n - s)), so a re-encoded signature is still the same token."""
    jti = claims.get("jti")
    material = f"jti\x00{jti}" if isinstance(jti, str) and jti else f"tok\x00{signed_part}"
    raw = f"{issuer_url}\x00{material}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


# --- the exchange ----------------------------------------------------------------------------
def exchange(
    raw_token: Any,
    *,
    features: Any = None,
    packages: Any = None,
    request: HttpRequest | None = None,
) -> MintResult:
    """Exchange an identity token for an upload token. Raises TrustedPublishingError."""
    issuer_url = ""
    verified_claims: dict[str, Any] = {}
    publisher: Publisher | None = None
    try:
        if not is_enabled():
            raise TrustedPublishingError(
                ErrorCode.NOT_ENABLED, "trusted publishing is not enabled on this index"
            )
        single_use = _parse_features(features)
        requested = _parse_packages(packages)
        verified = verify_identity_token(raw_token)
        issuer, claims = verified.issuer, verified.claims
        issuer_url, verified_claims = issuer["url"], claims
        publisher, projects = find_publisher(issuer, claims)
        signed_part = verified.signing_input.decode("ascii")
        result = _mint(
            publisher, projects, issuer, claims, signed_part, single_use, requested, request
        )
    except TrustedPublishingError as exc:
        exc.issuer_url = exc.issuer_url or issuer_url
        exc.claims = exc.claims or verified_claims
        exc.publisher = exc.publisher or publisher
        record_failure(exc, request)
        raise
    return result


def _mint(
    publisher: Publisher,
    projects: list[str],
    issuer: dict[str, Any],
    claims: dict[str, Any],
    signed_part: str,
    single_use: bool,
    requested: list[str] | None,
    request: HttpRequest | None,
) -> MintResult:
    rules = get_rules(issuer["provider"])
    if requested is not None:
        outside = [p for p in requested if p not in projects]
        if outside:
            raise TrustedPublishingError(
                ErrorCode.PACKAGE_NOT_AUTHORISED,
                f"publisher {publisher.describe()!r} may not publish {', '.join(outside)}",
                publisher=publisher,
            )
        projects = requested
    if not projects:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PUBLISHER,
            f"publisher {publisher.describe()!r} is not registered for any project",
            publisher=publisher,
        )

    now = timezone.now()
    leeway = int(tp_settings.JWT_LEEWAY)
    exp = claims.get("exp")
    replay_until = (
        datetime.fromtimestamp(min(int(exp) + leeway + REPLAY_MARGIN, MAX_NUMERIC_DATE), tz=UTC)
        if isinstance(exp, int | float)
        else now + timedelta(hours=6)
    )
    key = replay_key(issuer["url"], claims, signed_part)
    token = new_token()
    lifetime = int(tp_settings.TOKEN_LIFETIME)
    expires_at = now + timedelta(seconds=lifetime)
    # NUL-free once for both rows that store it (PostgreSQL refuses NUL in jsonb).
    snapshot = without_nul(rules.snapshot(claims))
    reified: list[str] = []
    # Minute resolution is enough for "last used" and saves a write per mint in storms.
    last = publisher.last_used_at
    touch = last is None or (now - last).total_seconds() > LAST_USED_RESOLUTION
    bindings = rules.bindings(publisher, claims)
    alias = router.db_for_write(IssuedToken)
    connection = connections[alias]
    # The common case writes only the three new rows: on PostgreSQL outside a transaction that
    # is one statement, atomic on its own, so no BEGIN/COMMIT round trips are needed.
    only_new_rows = not (publisher.is_pending or touch or bindings)
    one_statement = (
        only_new_rows and connection.vendor == "postgresql" and not connection.in_atomic_block
    )
    token_values: dict[str, Any] = {
        "digest": hash_token(token),
        "publisher_id": publisher.pk,
        "projects": projects,
        "single_use": single_use,
        "created_at": now,
        "expires_at": expires_at,
        "issuer_url": issuer["url"],
        "subject": rules.subject(claims)[:400],
        "run_id": rules.run_id(claims),
        "claims": snapshot,
    }
    event_values = AuditEvent.clean_values(
        {
            "created_at": now,
            "kind": AuditEvent.Kind.TOKEN_MINTED.value,
            "outcome": AuditEvent.Outcome.SUCCESS.value,
            "message": f"{'single' if single_use else 'multi'}-use token for "
            f"{', '.join(projects)}, valid {lifetime} s",
            "issuer_url": issuer["url"],
            "publisher_id": publisher.pk,
            "publisher_label": publisher.describe()[:400],
            "projects": projects,
            "remote_addr": _client_address(request),
        }
    )
    event_values["claims"] = snapshot  # NUL-free already

    replay_values = {
        "key": key,
        "issuer_url": issuer["url"],
        "expires_at": replay_until,
        "created_at": now,
    }
    try:
        if only_new_rows:
            # The replay record (first: a replay fails on its unique key), the token and its
            # audit event: one statement on PostgreSQL, three on one cursor elsewhere.
            with nullcontext() if one_statement else transaction.atomic(using=alias):
                _replay_id, token_id, _event_id = fastsql.insert_chain(
                    [
                        (UsedIdentityToken, replay_values),
                        (IssuedToken, token_values),
                        (AuditEvent, event_values),
                    ],
                    link="token_id",
                )
        else:
            with transaction.atomic(using=alias):
                # First write: a concurrent exchange of the same identity token blocks here and
                # then fails on the unique key, so nothing below runs for a replay (a pending
                # publisher's project creation included).
                fastsql.insert(UsedIdentityToken, replay_values)
                # Concurrent first exchanges of a pending publisher: lock its row and re-read,
                # so exactly one creates the projects; the others wait and mint as usual.
                if publisher.is_pending and list(
                    Publisher.objects.select_for_update()
                    .filter(pk=publisher.pk, pending_expires_at__isnull=False)
                    .values_list("pk", flat=True)
                ):
                    reified = _reify(publisher, issuer["url"])
                else:
                    publisher.pending_expires_at = None
                # The publisher row is written before the provider row, in every path: the first
                # exchange of a pending publisher locks the publisher row first (above), and the
                # opposite order here let concurrent first exchanges deadlock on PostgreSQL.
                if touch:
                    Publisher.objects.filter(pk=publisher.pk).update(last_used_at=now)
                if bindings:
                    _bind_ids(publisher, bindings)
                # Prebuilt INSERTs (fastsql.py): the ORM's save machinery cost more CPU than the
                # rest of the exchange.
                token_id, _event_id = fastsql.insert_chain(
                    [(IssuedToken, token_values), (AuditEvent, event_values)], link="token_id"
                )
    except IntegrityError:
        if UsedIdentityToken.objects.filter(pk=key).exists():
            raise TrustedPublishingError(
                ErrorCode.INVALID_REUSE_TOKEN,
                "this identity token was already exchanged; request a new one",
                publisher=publisher,
            ) from None
        raise

    def load() -> IssuedToken:
        issued = fastsql.loaded(IssuedToken, token_id, token_values, alias)
        issued.publisher = publisher
        return issued

    result = MintResult(
        token=token, expires=int(expires_at.timestamp()), token_id=token_id, _load=load
    )

    def _notify() -> None:
        if reified:
            signals.publisher_reified.send(sender=Publisher, publisher=publisher, projects=reified)
        if signals.token_minted.has_listeners(IssuedToken):
            signals.token_minted.send(
                sender=IssuedToken,
                token=result.issued,
                publisher=publisher,
                claims=snapshot,
                request=request,
            )

    if reified or signals.token_minted.has_listeners(IssuedToken):
        transaction.on_commit(_notify)
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "minted token #%s for publisher #%s (%s) projects=%s",
            token_id,
            publisher.pk,
            publisher.describe(),
            ",".join(projects),
        )
    return result


def _bind_ids(publisher: Publisher, bindings: dict[str, str]) -> None:
    """Bind immutable ids on first use, only while they are still unbound.

    Two concurrent "first" exchanges can both have passed the checks against the unbound row;
    the conditional UPDATE lets exactly one bind, and the other is refused unless it carries the
    very same ids (a resurrected account racing the real one cannot overwrite the binding).
    """
    model = type(publisher)
    unbound = {name: "" for name in bindings}
    if model.objects.filter(pk=publisher.pk, **unbound).update(**bindings):
        return
    current = model.objects.filter(pk=publisher.pk).values(*bindings).first()
    if current is None or any(current[name] != value for name, value in bindings.items()):
        raise TrustedPublishingError(
            ErrorCode.INVALID_PUBLISHER,
            "valid token, but a concurrent exchange bound this publisher to different "
            f"immutable ids ({', '.join(sorted(bindings))}); refusing",
            publisher=publisher,
        )


def _reify(publisher: Publisher, issuer_url: str) -> list[str]:
    """First exchange of a pending publisher: create its projects, make it ordinary."""
    if publisher.pending_expired:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PENDING_PUBLISHER,
            "this pending publisher has expired; ask an operator to register it again",
            publisher=publisher,
        )
    integration = get_integration()
    names = publisher.project_names()
    for name in names:
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
    Publisher.objects.filter(pk=publisher.pk).update(pending_expires_at=None)
    publisher.pending_expires_at = None
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
    claims = safe_claims(exc.claims, AUDITED_CLAIMS) if exc.claims else {}
    publisher = exc.publisher if isinstance(exc.publisher, Publisher) else None
    try:
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.EXCHANGE_FAILED,
            outcome=AuditEvent.Outcome.FAILURE,
            error_code=exc.code.value,
            message=exc.description[:2000],
            issuer_url=exc.issuer_url[:400],
            publisher=publisher,
            publisher_label=publisher.describe()[:400] if publisher else "",
            claims=claims,
            remote_addr=_client_address(request),
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


# --- revocation ---------------------------------------------------------------------------------
def revoke_token(
    token: IssuedToken, actor: str, reason: str, *, kind: str = AuditEvent.Kind.TOKEN_REVOKED
) -> bool:
    """Revoke ``token`` now. Returns False if it was already revoked."""
    now = timezone.now()
    changed = IssuedToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason[:200]
    )
    if not changed:
        return False
    token.revoked_at, token.revoked_reason = now, reason[:200]
    from .cache import forget_token

    forget_token(token.digest)
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
