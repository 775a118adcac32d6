"""Lookups kept in the shared Django cache (``TRUSTED_PUBLISHING["CACHE_ALIAS"]``).

Only non-secret data is cached: issuer settings, and token *digests* mapped to the token's row
id, publisher and projects. Entries are dropped whenever the row changes (see receivers.py), and
the upload check re-reads revocation, expiry and the publisher's projects from the database, so
a stale entry can never authorise anything.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from typing import Any

from django.core.cache import BaseCache, caches

from .conf import tp_settings

ISSUER_TTL = 300
TOKEN_TTL = 300
_MISSING = "__missing__"


def get_cache() -> BaseCache:
    return caches[tp_settings.CACHE_ALIAS]


def _key(kind: str, value: str) -> str:
    # Hash untrusted input: memcached keys forbid spaces and control characters.
    return f"tp:{kind}:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"


def issuer_key(url: str) -> str:
    return _key("issuer", url)


def keyset_key(url: str) -> str:
    """Cache key of an issuer's fetched JWKS (written by keys.py)."""
    return _key("jwks-set", url)


#: Set by verification.verify_identity_token for the duration of one verification: then
#: get_issuer reads the issuer entry and its key set in one round trip (``get_many``) and leaves
#: the key set here for keys.get_signing_key, which takes it only for that same issuer dict.
#: Nothing outlives the verification, so this is not a process-local cache.
keyset_prefetch: ContextVar[dict[str, Any] | None] = ContextVar("tp_keyset_prefetch", default=None)


def get_issuer(url: str) -> dict[str, Any] | None:
    """The trusted issuer whose URL is exactly ``url``, or None. Cached, including misses."""
    from .models import TrustedIssuer

    if "\x00" in url:  # never an issuer URL, and PostgreSQL cannot even compare it
        return None
    cache = get_cache()
    key = issuer_key(url)
    prefetch = keyset_prefetch.get()
    if prefetch is None:
        cached = cache.get(key)
    else:
        # Both keys derive from the unverified ``iss``: one round trip instead of two.
        found = cache.get_many([key, keyset_key(url)])
        cached = found.get(key)
        prefetch.clear()
        prefetch["keyset"] = found.get(keyset_key(url))
    if cached == _MISSING:
        return None
    if cached is None:
        row = TrustedIssuer.objects.filter(url=url).first()
        cached = row.as_cache_dict() if row else None
        cache.set(key, cached if cached is not None else _MISSING, ISSUER_TTL)
    if prefetch is not None and cached is not None:
        prefetch["issuer"] = cached
    return cached


def forget_issuer(url: str) -> None:
    get_cache().delete(issuer_key(url))


def token_key(digest: str) -> str:
    return f"tp:token:{digest}"


def get_token_entry(digest: str) -> dict[str, Any] | None:
    return get_cache().get(token_key(digest))


def set_token_entry(digest: str, entry: dict[str, Any], ttl: int) -> None:
    if ttl > 0:
        get_cache().set(token_key(digest), entry, min(ttl, TOKEN_TTL))


def forget_token(digest: str) -> None:
    get_cache().delete(token_key(digest))


def forget_publisher_tokens(publisher_id: int | None) -> None:
    from .models import IssuedToken

    if publisher_id is None:
        return
    digests = (
        IssuedToken.objects.filter(publisher_id=publisher_id)
        .live()
        .values_list("digest", flat=True)
    )
    keys = [token_key(d) for d in digests]
    if keys:
        get_cache().delete_many(keys)
