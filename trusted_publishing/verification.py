"""Verifying an OIDC identity token (a JWT) from a trusted issuer.

Order matters: the token's shape and header are checked and its *unverified* ``iss`` is looked
up in the allowlist before anything touches the network. Only then is the issuer's key fetched
and the token verified: the algorithm pinned by the issuer row (never taken from the token) and
bound to the key, asymmetric algorithms only, the signature checked by PyJWT's algorithm for that
key (``cryptography`` underneath), ``exp``/``iat``/``iss``/``aud`` required, and the audience
compared strictly. Headers such as ``jku``, ``x5u``, ``jwk`` or ``x5c`` are never used: keys only
come from the issuer.

The token is parsed once, here, rather than by ``jwt.decode``: PyJWT checks each base64url
character in Python, which made its parse cost as much as the RSA check, and the exchange had
already decoded header and payload to find the issuer. The registered-claim rules below are the
ones ``jwt.decode`` applied with the options this module used to pass it (see
docs/threat-model.md), and stricter where PyJWT was lenient: non-canonical base64url, ``NaN`` or
``Infinity`` and numeric strings in time claims, symmetric algorithms.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from . import cache as tp_cache
from .conf import tp_settings
from .errors import ErrorCode, IssuerUnavailable, TrustedPublishingError
from .keys import UnknownKey, get_signing_key

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_KID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,256}$")
MAX_TOKEN_LENGTH = 16 * 1024
#: Identity tokens are signed with a private key. A symmetric algorithm (HS256, ...) would turn
#: a published key into a signing secret, so none is accepted, whatever an issuer row allows.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: NIST SP 800-131A: RSA keys below 2048 bits are not acceptable for signatures.
MIN_RSA_KEY_BITS = 2048
#: Registered claims every identity token must carry.
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat")


@dataclass(frozen=True)
class ParsedToken:
    """A JWT split and decoded, nothing verified."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class VerifiedToken:
    issuer: dict[str, Any]
    claims: dict[str, Any]
    #: ``header.payload`` as received: what the signature covers (signatures themselves can be
    #: malleable, e.g. ECDSA's (r, n - s), so replay keys never depend on them).
    signing_input: bytes


def _invalid(description: str, **kwargs: Any) -> TrustedPublishingError:
    return TrustedPublishingError(ErrorCode.INVALID_TOKEN, description, **kwargs)


def _malformed(detail: str = "") -> TrustedPublishingError:
    return TrustedPublishingError(
        ErrorCode.INVALID_PAYLOAD, f"malformed JWT: {detail}" if detail else "malformed JWT"
    )


def _shape_check(raw: Any) -> None:
    if not isinstance(raw, str) or not raw:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD, "'token' must be a non-empty string"
        )
    if len(raw) > MAX_TOKEN_LENGTH:
        raise _malformed("token too long")
    parts = raw.split(".")
    if (
        len(parts) != 3
        or not all(_SEGMENT.match(p) for p in parts[:2])
        or (parts[2] and not _SEGMENT.match(parts[2]))
    ):
        raise _malformed("expected three base64url segments")


def _b64decode(segment: str) -> bytes:
    """Strict base64url (the alphabet is checked by _shape_check): only the canonical encoding
    of a byte string is accepted, so no two encodings of one token exist."""
    if len(segment) % 4 == 1:  # no base64 string has this length
        raise ValueError("bad base64url length")
    decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode("ascii"):
        raise ValueError("non-canonical base64url")
    return decoded


def _no_constants(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default; an "exp" of Infinity must not parse.
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_no_constants)


def _json_object(data: bytes) -> dict[str, Any]:
    text = data.decode("utf-8")
    value = _JSON.decode(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    if "\\u" in text:
        # An escaped lone surrogate ("\\ud800") parses to a string no database or hash can
        # encode. Escaped pairs (emoji) are fine; re-encoding the parsed value tells them apart.
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError: ValueError
    return value


def parse_token(raw: Any) -> ParsedToken:
    """Split and decode a compact JWS, or raise invalid-payload. No network, no trust."""
    _shape_check(raw)
    header_segment, payload_segment, signature_segment = raw.split(".")
    try:
        header = _json_object(_b64decode(header_segment))
        payload = _json_object(_b64decode(payload_segment))
        signature = _b64decode(signature_segment) if signature_segment else b""
    except (ValueError, TypeError, RecursionError):  # binascii, JSON and UTF-8 errors included
        raise _malformed() from None
    if "kid" in header and not isinstance(header["kid"], str):
        raise _malformed("the 'kid' header must be a string")
    if "crit" in header or header.get("b64", True) is not True:
        # RFC 7515 §4.1.11: extensions the recipient does not understand must be refused. No
        # identity provider sets one, and this verifier understands none (b64 included).
        raise _malformed("unsupported critical header extension")
    return ParsedToken(
        header=header,
        payload=payload,
        signing_input=f"{header_segment}.{payload_segment}".encode("ascii"),
        signature=signature,
    )


def _unverified_issuer(token: ParsedToken) -> str:
    iss = token.payload.get("iss")
    if not isinstance(iss, str) or not iss or len(iss) > 400:
        raise _malformed("no 'iss' claim")
    return iss


def verify_identity_token(raw: Any) -> VerifiedToken:
    token = parse_token(raw)
    iss = _unverified_issuer(token)
    # Let the issuer lookup fetch the key set in the same cache round trip (see cache.py).
    prefetch = tp_cache.keyset_prefetch.set({})
    try:
        return _verify(token, iss)
    finally:
        tp_cache.keyset_prefetch.reset(prefetch)


def _verify(token: ParsedToken, iss: str) -> VerifiedToken:
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
    alg = token.header.get("alg")
    if alg not in algorithms or alg not in ASYMMETRIC_ALGORITHMS:
        allowed = [a for a in algorithms if a in ASYMMETRIC_ALGORITHMS]
        raise _invalid(
            f"token algorithm {str(alg)[:20]!r} is not allowed for this issuer "
            f"(allowed: {', '.join(allowed) or 'none'})",
            issuer_url=iss,
        )
    kid = token.header.get("kid")
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
    # The key carries its own algorithm (RS/HS confusion is impossible): the token's must be it.
    if key.algorithm_name != alg:
        raise _invalid(
            f"token algorithm {alg!r} does not match the issuer key's algorithm "
            f"{key.algorithm_name!r}",
            issuer_url=iss,
        )
    check_signature(token, key, iss)
    check_registered_claims(
        token.payload,
        issuer_url=issuer["url"],
        audience=tp_settings.AUDIENCE,
        leeway=tp_settings.JWT_LEEWAY,
    )
    return VerifiedToken(issuer=issuer, claims=token.payload, signing_input=token.signing_input)


def check_signature(token: ParsedToken, key: PyJWK, iss: str) -> None:
    """The signature over ``header.payload`` verifies with ``key``, a key of acceptable size."""
    algorithm = key.Algorithm
    try:
        prepared = algorithm.prepare_key(key.key)
    except (PyJWTError, ValueError, TypeError):  # e.g. an EC key on the wrong curve for its alg
        raise _invalid("the issuer's signing key cannot be used", issuer_url=iss) from None
    # Refuse keys too short to be trusted (RSA < 2048 bits), even from a trusted issuer.
    if isinstance(prepared, rsa.RSAPublicKey) and prepared.key_size < MIN_RSA_KEY_BITS:
        raise _invalid("the issuer's signing key is too short to be trusted", issuer_url=iss)
    try:
        valid = algorithm.verify(token.signing_input, prepared, token.signature)
    except (PyJWTError, ValueError, TypeError, binascii.Error):
        valid = False
    if not valid:
        raise _invalid("token signature does not verify", issuer_url=iss)


#: NumericDate values this index accepts: from the epoch to the end of year 9999 (what the
#: database and ``datetime`` can hold; anything else is an issuer bug or an attack).
MAX_NUMERIC_DATE = 253402300799


def _time_claim(claims: dict[str, Any], name: str, iss: str) -> float | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    # Compared as numbers, never converted: a 400-digit integer must not overflow a float.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_NUMERIC_DATE  # False for NaN as well
    ):
        raise _invalid(f"token claim {name!r} must be a number of seconds", issuer_url=iss)
    return value


def check_registered_claims(
    claims: dict[str, Any], *, issuer_url: str, audience: str, leeway: float
) -> None:
    """RFC 7519 claims of a signed token: present, well-typed, current, ours."""
    for name in REQUIRED_CLAIMS:
        if name not in claims:
            raise _invalid(f"token lacks the required claim {name!r}", issuer_url=issuer_url)
    check_lifetime(claims, issuer_url=issuer_url, leeway=leeway)
    check_audience(claims["aud"], audience, issuer_url=issuer_url)
    # The lookup was exact already; comparing with the configured URL keeps it so if that lookup
    # ever matched more loosely (GitHub signs enterprise-slug issuers with the same keys).
    if claims["iss"] != issuer_url:
        raise _invalid("token issuer does not match", issuer_url=issuer_url)
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise _invalid(f"token claim {name!r} must be a string", issuer_url=issuer_url)


def check_lifetime(claims: dict[str, Any], *, issuer_url: str, leeway: float) -> None:
    """``exp`` not passed, ``iat`` and ``nbf`` not in the future, with ``leeway`` seconds of
    clock skew either way."""
    now = time.time()
    exp = _time_claim(claims, "exp", issuer_url)
    iat = _time_claim(claims, "iat", issuer_url)
    nbf = _time_claim(claims, "nbf", issuer_url)
    if exp is not None and exp <= now - leeway:
        raise _invalid("token has expired", issuer_url=issuer_url)
    if (iat is not None and iat > now + leeway) or (nbf is not None and nbf > now + leeway):
        raise _invalid("token is not yet valid (nbf or iat in the future)", issuer_url=issuer_url)


def check_audience(aud: Any, audience: str, *, issuer_url: str) -> None:
    """Strict: one audience, exactly ours. A token also valid for another service (a list) is
    refused, even when ours is in the list."""
    if not isinstance(aud, str) or aud != audience:
        raise _invalid(
            f"token audience does not match this index (expected exactly {audience!r})",
            issuer_url=issuer_url,
        )
