"""Lookups kept in the shared Django cache (``TRUSTED_PUBLISHING["CACHE_ALIAS"]``).

Only non-secret data is cached: issuer settings, and token *digests* mapped to the token's row
id, publisher and projects. Entries are dropped whenever the row changes (see receivers.py), and
the upload check re-reads revocation, expiry and the publisher's projects from the database, so
a stale entry can never authorise anything.
"""

from __future__ import annotations

import hashlib
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


def get_issuer(url: str) -> dict[str, Any] | None:
    """The trusted issuer whose URL is exactly ``url``, or None. Cached, including misses."""
    from .models import TrustedIssuer

    if "\x00" in url:  # never an issuer URL, and PostgreSQL cannot even compare it
        return None
    cache = get_cache()
    key = issuer_key(url)
    cached = cache.get(key)
    if cached == _MISSING:
        return None
    if cached is not None:
        return cached
    row = TrustedIssuer.objects.filter(url=url).first()
    value = row.as_cache_dict() if row else None
    cache.set(key, value if value is not None else _MISSING, ISSUER_TTL)
    return value


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
