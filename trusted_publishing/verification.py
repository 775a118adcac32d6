"""Verifying an OIDC identity token (a JWT) from a trusted issuer.

Order matters: the token's shape and header are checked and its *unverified* ``iss`` is looked
up in the allowlist before anything touches the network. Only then is the issuer's key fetched
and the token verified with PyJWT, the algorithm pinned by the issuer row (never taken from the
token), ``exp``/``iat``/``iss``/``aud`` required, and the audience compared strictly. Headers
such as ``jku``, ``x5u``, ``jwk`` or ``x5c`` are never used: keys only come from the issuer.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from . import cache as tp_cache
from .conf import tp_settings
from .errors import ErrorCode, IssuerUnavailable, TrustedPublishingError
from .keys import UnknownKey, get_signing_key

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_KID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,256}$")
MAX_TOKEN_LENGTH = 16 * 1024


@dataclass(frozen=True)
class VerifiedToken:
    issuer: dict[str, Any]
    claims: dict[str, Any]


def _invalid(description: str, **kwargs: Any) -> TrustedPublishingError:
    return TrustedPublishingError(ErrorCode.INVALID_TOKEN, description, **kwargs)


def _shape_check(raw: Any) -> None:
    if not isinstance(raw, str) or not raw:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD, "'token' must be a non-empty string"
        )
    if len(raw) > MAX_TOKEN_LENGTH:
        raise TrustedPublishingError(ErrorCode.INVALID_PAYLOAD, "malformed JWT: token too long")
    parts = raw.split(".")
    if (
        len(parts) != 3
        or not all(_SEGMENT.match(p) for p in parts[:2])
        or (parts[2] and not _SEGMENT.match(parts[2]))
    ):
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD, "malformed JWT: expected three base64url segments"
        )


def _b64decode(segment: str) -> bytes:
    if len(segment) % 4 == 1:  # no base64 string has this length
        raise ValueError("bad base64url length")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def peek_issuer(raw: str) -> tuple[dict[str, Any], str]:
    """Return (header, unverified iss) or raise invalid-payload. No network, no trust."""
    _shape_check(raw)
    header_segment, payload_segment, _ = raw.split(".")
    try:
        # Decoded here rather than by a second PyJWT parse: PyJWT checks every base64url
        # character in Python, so one parse of a ~1.5 kB token costs about half the RSA check,
        # and _shape_check has already matched both segments against the base64url alphabet.
        # Nothing read here is trusted: jwt.decode parses and checks the token again.
        header = json.loads(_b64decode(header_segment))
        unverified = json.loads(_b64decode(payload_segment))
    except (ValueError, TypeError, RecursionError):  # binascii, JSON and UTF-8 errors included
        raise TrustedPublishingError(ErrorCode.INVALID_PAYLOAD, "malformed JWT") from None
    if not isinstance(header, dict) or not isinstance(unverified, dict):
        raise TrustedPublishingError(ErrorCode.INVALID_PAYLOAD, "malformed JWT")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD, "malformed JWT: the 'kid' header must be a string"
        )
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions the recipient does not understand must be refused. No
        # identity provider sets one, and this verifier understands none.
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD, "malformed JWT: unsupported critical header extension"
        )
    iss = unverified.get("iss")
    if not isinstance(iss, str) or not iss or len(iss) > 400:
        raise TrustedPublishingError(ErrorCode.INVALID_PAYLOAD, "malformed JWT: no 'iss' claim")
    return header, iss


def verify_identity_token(raw: Any) -> VerifiedToken:
    header, iss = peek_issuer(raw)
    # Let the issuer lookup fetch the key set in the same cache round trip (see cache.py).
    prefetch = tp_cache.keyset_prefetch.set({})
    try:
        return _verify(raw, header, iss)
    finally:
        tp_cache.keyset_prefetch.reset(prefetch)


def _verify(raw: str, header: dict[str, Any], iss: str) -> VerifiedToken:
    issuer = tp_cache.get_issuer(iss)
    if issuer is None:
        raise TrustedPublishingError(
            ErrorCode.UNKNOWN_ISSUER,
            f"issuer {iss!r} is not trusted by this index: an operator can add it with "
            "`manage.py trusted_publishing add-issuer` or in admin → Trusted issuers",
            issuer_url=iss,
        )
    if not issuer["enabled"]:
        raise TrustedPublishingError(
            ErrorCode.NOT_ENABLED,
            f"trusted publishing from issuer {iss!r} is disabled on this index",
            issuer_url=iss,
        )

    algorithms = issuer["algorithms"] or ["RS256"]
    alg = header.get("alg")
    if alg not in algorithms:
        raise _invalid(
            f"token algorithm {str(alg)[:20]!r} is not allowed for this issuer "
            f"(allowed: {', '.join(algorithms)})",
            issuer_url=iss,
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.match(kid):
        raise _invalid("token header has no usable 'kid' (key id)", issuer_url=iss)

    try:
        key = get_signing_key(issuer, kid)
    except UnknownKey:
        raise _invalid(f"issuer has no signing key with id {kid!r}", issuer_url=iss) from None
    except IssuerUnavailable as exc:
        raise TrustedPublishingError(
            ErrorCode.ISSUER_UNAVAILABLE,
            f"keys of issuer {iss!r} are unavailable ({exc}); retry shortly",
            issuer_url=iss,
            retry_after=int(tp_settings.JWKS_REFRESH_COOLDOWN),
        ) from None
    # The key carries its own algorithm (RS/HS confusion is impossible); it must be allowed too.
    if key.algorithm_name not in algorithms:
        raise _invalid("issuer key algorithm is not allowed for this issuer", issuer_url=iss)

    audience = tp_settings.AUDIENCE
    try:
        claims = jwt.decode(
            raw,
            key=key,
            algorithms=algorithms,
            audience=audience,
            issuer=iss,
            leeway=tp_settings.JWT_LEEWAY,
            options={
                "verify_signature": True,
                "require": ["iss", "aud", "exp", "iat"],
                "verify_exp": True,
                "verify_iat": True,
                "verify_nbf": True,
                "verify_aud": True,
                "verify_iss": True,
                "strict_aud": True,
                # Refuse keys too short to be trusted (RSA < 2048 bits).
                "enforce_minimum_key_length": True,
            },
        )
    except jwt_errors.ExpiredSignatureError:
        raise _invalid("token has expired", issuer_url=iss) from None
    except jwt_errors.ImmatureSignatureError:
        raise _invalid(
            "token is not yet valid (nbf or iat in the future)", issuer_url=iss
        ) from None
    except jwt_errors.InvalidAudienceError:
        raise _invalid(
            f"token audience does not match this index (expected exactly {audience!r})",
            issuer_url=iss,
        ) from None
    except jwt_errors.InvalidIssuerError:
        raise _invalid("token issuer does not match", issuer_url=iss) from None
    except jwt_errors.MissingRequiredClaimError as exc:
        raise _invalid(f"token lacks the required claim {exc.claim!r}", issuer_url=iss) from None
    except jwt_errors.InvalidSignatureError:
        raise _invalid("token signature does not verify", issuer_url=iss) from None
    except (jwt_errors.PyJWTError, ValueError, TypeError):
        raise _invalid("token could not be verified", issuer_url=iss) from None
    if not isinstance(claims, dict):
        raise _invalid("token payload is not a JSON object", issuer_url=iss)
    return VerifiedToken(issuer=issuer, claims=claims)
