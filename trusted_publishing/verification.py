"""Verifying an OIDC identity token (a JWT) from a trusted issuer, with PyJWT.

Order matters. The token's *unverified* header and ``iss`` (``jwt.get_unverified_header`` and an
unverified ``jwt.decode``) are only used to pick the issuer row and the key: the issuer must be
in the allowlist before anything touches the network. Then ``jwt.decode`` verifies everything
with the issuer's key: the algorithm pinned by the issuer row (never taken from the token) and
bound to the key, ``exp``/``iat``/``iss``/``aud`` required, ``iss`` exact, the audience strict
(one string, exactly ours) and ``leeway`` seconds of clock skew.

What PyJWT does not do is added here, each as one small check:

* asymmetric algorithms only (a symmetric one would turn a published key into a secret);
* RSA keys of at least 2048 bits (PyJWT 2.10 cannot enforce a minimum);
* ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never read: keys only come from the issuer;
* one spelling per token: unpadded, canonical base64url (older PyJWT accepts any spelling of
  the signature);
* ``crit`` headers are refused (RFC 7515 §4.1.11: no identity provider sets one);
* time claims must be numbers within what a database can hold (PyJWT converts with ``int()``,
  which turns ``1e400`` into an error and accepts ``NaN``-like values), and no string may hold an
  escaped lone surrogate (it parses, but no database can store it).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK

from .conf import tp_settings
from .errors import ErrorCode, IssuerUnavailable, TrustedPublishingError
from .keys import UnknownKey, get_signing_key

MAX_TOKEN_LENGTH = 16 * 1024
_KID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,256}$")
#: Compact JWS: three unpadded base64url segments (the signature may be empty, and is refused
#: later as not verifying).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: Identity tokens are signed with a private key. A symmetric algorithm (HS256, ...) would turn
#: a published key into a signing secret, so none is accepted, whatever an issuer row allows.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: NIST SP 800-131A: RSA keys below 2048 bits are not acceptable for signatures.
MIN_RSA_KEY_BITS = 2048
#: Registered claims every identity token must carry.
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat")
#: NumericDate values this index accepts: from the epoch to the end of year 9999 (what the
#: database and ``datetime`` can hold; anything else is an issuer bug or an attack).
MAX_NUMERIC_DATE = 253402300799
TIME_CLAIMS = ("exp", "iat", "nbf")


@dataclass(frozen=True)
class VerifiedToken:
    issuer: Any  # the TrustedIssuer row
    claims: dict[str, Any]
    #: ``header.payload`` as received: what the signature covers (signatures themselves can be
    #: malleable, e.g. ECDSA's (r, n - s), so replay keys never depend on them).
    signing_input: str


def _invalid(description: str, issuer_url: str = "") -> TrustedPublishingError:
    return TrustedPublishingError(ErrorCode.INVALID_TOKEN, description, issuer_url=issuer_url)


def _malformed(detail: str = "") -> TrustedPublishingError:
    return TrustedPublishingError(
        ErrorCode.INVALID_PAYLOAD, f"malformed JWT: {detail}" if detail else "malformed JWT"
    )


def _storable(value: dict[str, Any]) -> bool:
    """False for what parses but is not JSON a database can store: ``NaN`` or ``Infinity``
    (Python's parser accepts them) and lone surrogates (an escaped ``\\ud800`` parses)."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return False
    return True


def _canonical(segment: str) -> bool:
    """True if ``segment`` is the one base64url spelling of the bytes it decodes to (the unused
    low bits of its last character are zero)."""
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (ValueError, binascii.Error):
        return False
    return base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") == segment


def read_unverified(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token's header and claims, *not verified*: only to choose the issuer and the key."""
    if not isinstance(raw, str) or not raw:
        raise TrustedPublishingError(
            ErrorCode.INVALID_PAYLOAD, "'token' must be a non-empty string"
        )
    if len(raw) > MAX_TOKEN_LENGTH:
        raise _malformed("token too long")
    if not _COMPACT_JWS.fullmatch(raw):
        raise _malformed("expected three base64url segments")
    if not _canonical(raw.rsplit(".", 1)[1]):
        # One token, one spelling (PyJWT before 2.11 decodes any spelling of the signature).
        raise _malformed("non-canonical base64url signature")
    try:
        header = jwt.get_unverified_header(raw)
        claims = jwt.decode(raw, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise _malformed() from None
    if not isinstance(claims, dict) or not _storable(header) or not _storable(claims):
        raise _malformed()
    if "crit" in header or "b64" in header:
        raise _malformed("unsupported critical header extension")
    if "kid" in header and not isinstance(header["kid"], str):
        raise _malformed("the 'kid' header must be a string")
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss or len(iss) > 400:
        raise _malformed("no 'iss' claim")
    return header, claims


def check_numeric_dates(claims: dict[str, Any], issuer_url: str) -> None:
    """Time claims are numbers of seconds a database can store (compared, never converted, so a
    400-digit integer cannot overflow anything)."""
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_NUMERIC_DATE  # False for NaN as well
        ):
            raise _invalid(f"token claim {name!r} must be a number of seconds", issuer_url)


def find_issuer(iss: str) -> Any:
    """The enabled TrustedIssuer whose URL is exactly ``iss`` (read from the database every
    time, so disabling an issuer takes effect on the next request in every worker)."""
    from .models import TrustedIssuer

    # NUL is in no issuer URL, and PostgreSQL cannot even compare it.
    issuer = TrustedIssuer.objects.filter(url=iss).first() if "\x00" not in iss else None
    if issuer is None:
        raise TrustedPublishingError(
            ErrorCode.UNKNOWN_ISSUER,
            f"issuer {iss!r} is not trusted by this index: an operator can add it with "
            "`manage.py trusted_publishing add-issuer` or in admin → Trusted issuers",
            issuer_url=iss,
        )
    if not issuer.enabled:
        raise TrustedPublishingError(
            ErrorCode.NOT_ENABLED,
            f"trusted publishing from issuer {iss!r} is disabled on this index",
            issuer_url=iss,
        )
    return issuer


def choose_key(issuer: Any, header: dict[str, Any]) -> PyJWK:
    """The issuer's key for this token: its algorithm allowed by the issuer row and asymmetric,
    its ``kid`` published by the issuer, the key big enough to trust."""
    url = issuer.url
    algorithms = list(issuer.algorithms or ["RS256"])
    alg = header.get("alg")
    if alg not in algorithms or alg not in ASYMMETRIC_ALGORITHMS:
        allowed = [a for a in algorithms if a in ASYMMETRIC_ALGORITHMS]
        raise _invalid(
            f"token algorithm {str(alg)[:20]!r} is not allowed for this issuer "
            f"(allowed: {', '.join(allowed) or 'none'})",
            url,
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.match(kid):
        raise _invalid("token header has no usable 'kid' (key id)", url)
    try:
        key = get_signing_key(issuer, kid)
    except UnknownKey:
        raise _invalid(f"issuer has no signing key with id {kid!r}", url) from None
    except IssuerUnavailable as exc:
        raise TrustedPublishingError(
            ErrorCode.ISSUER_UNAVAILABLE,
            f"keys of issuer {url!r} are unavailable ({exc}); retry shortly",
            issuer_url=url,
            retry_after=int(tp_settings.JWKS_REFRESH_COOLDOWN),
        ) from None
    # The key carries its own algorithm (RS/HS confusion is impossible): the token's must be it.
    if key.algorithm_name != alg:
        raise _invalid(
            f"token algorithm {alg!r} does not match the issuer key's algorithm "
            f"{key.algorithm_name!r}",
            url,
        )
    if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < MIN_RSA_KEY_BITS:
        raise _invalid("the issuer's signing key is too short to be trusted", url)
    return key


#: jwt.decode's refusals, by exception class name, as client-safe sentences (some classes are
#: newer than PyJWT 2.10, the oldest supported: looked up by name).
_EXPLANATIONS = {
    "ExpiredSignatureError": "token has expired",
    "ImmatureSignatureError": "token is not yet valid (nbf or iat in the future)",
    "InvalidAudienceError": "token audience does not match this index (expected exactly {aud!r})",
    "InvalidIssuerError": "token issuer does not match",
    "MissingRequiredClaimError": "token lacks the required claim {claim!r}",
    "InvalidIssuedAtError": "token claim 'iat' must be a number of seconds",
    "InvalidSubjectError": "token claim 'sub' must be a string",
    "InvalidJTIError": "token claim 'jti' must be a string",
    "InvalidKeyError": "the issuer's signing key cannot be used",
}


def _explain(exc: jwt.PyJWTError, audience: str) -> str:
    for cls in type(exc).__mro__:
        if cls.__name__ in _EXPLANATIONS:
            claim = getattr(exc, "claim", "")
            return _EXPLANATIONS[cls.__name__].format(aud=audience, claim=claim)
    return "token signature does not verify"


def verify_identity_token(raw: Any) -> VerifiedToken:
    """Verify ``raw`` against the trusted issuer it names, or raise TrustedPublishingError."""
    header, unverified = read_unverified(raw)
    issuer = find_issuer(unverified["iss"])
    check_numeric_dates(unverified, issuer.url)
    key = choose_key(issuer, header)
    audience = tp_settings.AUDIENCE
    try:
        claims = jwt.decode(
            raw,
            key,
            algorithms=[key.algorithm_name],
            audience=audience,
            issuer=issuer.url,
            leeway=float(tp_settings.JWT_LEEWAY),
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
    except jwt.PyJWTError as exc:
        raise _invalid(_explain(exc, audience), issuer.url) from None
    except (ValueError, TypeError, OverflowError):  # a key unusable for its algorithm
        raise _invalid("the issuer's signing key cannot be used", issuer.url) from None
    for name in ("sub", "jti"):  # PyJWT < 2.10.2 does not type-check these
        if name in claims and not isinstance(claims[name], str):
            raise _invalid(f"token claim {name!r} must be a string", issuer.url)
    return VerifiedToken(issuer=issuer, claims=claims, signing_input=raw.rsplit(".", 1)[0])
