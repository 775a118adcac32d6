"""Lookups kept in the shared Django cache (``TRUSTED_PUBLISHING["CACHE_ALIAS"]``).

Only non-secret data is cached: issuer settings, and token *digests* mapped to the token's row
id, publisher and projects. Entries are dropped whenever the row changes (see receivers.py), and
the upload check re-reads revocation, expiry and the publisher's projects from the database, so
a stale entry can never authorise anything.

In front of the shared cache sits a small process-local copy (:class:`LocalCache`) that keeps an
issuer with its key set, and a token entry, for ``LOCAL_CACHE_TTL`` seconds (default 5): one
round trip to Redis through Django's cache API costs more than verifying the signature, and a
release storm asks for the same issuer thousands of times a minute. The process that changes a
row drops its own copy at once; other processes see the change within ``LOCAL_CACHE_TTL``.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from contextvars import ContextVar
from time import monotonic
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import SETTINGS_NAME, tp_settings

ISSUER_TTL = 300
TOKEN_TTL = 300
_MISSING = "__missing__"


def get_cache() -> BaseCache:
    return caches[tp_settings.CACHE_ALIAS]


class LocalCache:
    """A bounded, thread-safe, process-local map of key -> value that expires after a TTL.

    Values are stored pickled, as the shared cache stores them, so every reader gets its own
    copy: a caller that mutates what it got (a principal's publisher, say) cannot change what
    other requests see. Only entries for registered issuers and minted tokens go in, and the
    size is bounded, so a flood of garbage tokens cannot grow it.
    """

    def __init__(self, max_entries: int = 2048) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def ttl() -> float:
        value = tp_settings.LOCAL_CACHE_TTL
        return float(value) if isinstance(value, int | float) and value > 0 else 0.0

    def get(self, key: str) -> Any:
        item = self._entries.get(key)
        if item is None:
            return None
        if item[0] <= monotonic():
            self.discard(key)
            return None
        return pickle.loads(item[1])  # noqa: S301 (only this process's own pickles)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        lifetime = self.ttl() if ttl is None else min(ttl, self.ttl())
        if lifetime <= 0:
            return
        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._entries.pop(key, None)  # re-insert at the end: eviction is oldest-first
            self._entries[key] = (monotonic() + lifetime, data)
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]

    def discard(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: The process-local layer in front of the shared cache (see the module docstring).
local = LocalCache()


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    # Another cache or other app settings (tests, mostly): what was read before does not apply.
    if setting in {"CACHES", SETTINGS_NAME}:
        local.clear()


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
    key = issuer_key(url)
    prefetch = keyset_prefetch.get()
    held = local.get(key)
    if held is not None:
        # (issuer, key set) as the shared cache held them at most LOCAL_CACHE_TTL seconds ago.
        cached, keyset = held
        if prefetch is not None:
            prefetch.clear()
            prefetch["keyset"] = keyset
            prefetch["issuer"] = cached
        return cached
    cache = get_cache()
    if prefetch is None:
        cached = cache.get(key)
        keyset = None
    else:
        # Both keys derive from the unverified ``iss``: one round trip instead of two.
        found = cache.get_many([key, keyset_key(url)])
        cached = found.get(key)
        keyset = found.get(keyset_key(url))
        prefetch.clear()
        prefetch["keyset"] = keyset
    if cached == _MISSING:
        return None
    if cached is None:
        row = TrustedIssuer.objects.filter(url=url).first()
        cached = row.as_cache_dict() if row else None
        cache.set(key, cached if cached is not None else _MISSING, ISSUER_TTL)
    if cached is not None and (keyset is not None or cached.get("key_source") == "static"):
        # Only registered issuers, and only once their keys are known, are kept locally (an
        # unknown-issuer flood must not fill it; a cold key set must be fetched first).
        local.set(key, (cached, keyset))
    if prefetch is not None and cached is not None:
        prefetch["issuer"] = cached
    return cached


def forget_issuer(url: str) -> None:
    forget_local_issuer(url)
    get_cache().delete(issuer_key(url))


def forget_local_issuer(url: str) -> None:
    """Drop this process's copy of an issuer and its key set (keys.py, after a refetch)."""
    local.discard(issuer_key(url))


def token_key(digest: str) -> str:
    return f"tp:token:{digest}"


def get_token_entry(digest: str) -> dict[str, Any] | None:
    key = token_key(digest)
    entry = local.get(key)
    if entry is None:
        entry = get_cache().get(key)
        if entry is not None:
            local.set(key, entry)
    return entry


def set_token_entry(digest: str, entry: dict[str, Any], ttl: int) -> None:
    if ttl > 0:
        get_cache().set(token_key(digest), entry, min(ttl, TOKEN_TTL))
        local.set(token_key(digest), entry, ttl)


def forget_token(digest: str) -> None:
    local.discard(token_key(digest))
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
        local.discard(*keys)
        get_cache().delete_many(keys)
