"""The shared Django cache (``TRUSTED_PUBLISHING["CACHE_ALIAS"]``) and the keys the app uses in it.

Only non-secret data goes there: issuers' fetched key sets, the refetch gate of each issuer and
the exchange rate-limit counters. Issuers, publishers and tokens are always read from the
database, so a change made in one worker applies to the very next request in every other.
"""

from __future__ import annotations

import hashlib

from django.core.cache import BaseCache, caches

from .conf import tp_settings


def get_cache() -> BaseCache:
    return caches[tp_settings.CACHE_ALIAS]


def cache_key(kind: str, value: str) -> str:
    # Hash what may come from a token: memcached keys forbid spaces and control characters.
    return f"tp:{kind}:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"
