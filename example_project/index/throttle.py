"""Failed password logins on ``/legacy/``, counted in the shared cache (all workers together).

Checking a password costs a deliberately slow hash, so unthrottled guessing is both a brute-force
and a CPU problem. Each failed HTTP Basic login counts once against the account (the user name
tried, whether or not it exists) and once against the client's address. Once either has
``INDEX_LOGIN_MAX_FAILURES`` failures within ``INDEX_LOGIN_FAILURE_WINDOW`` seconds (counted from
its first failure), further password logins for it are answered ``429`` with ``Retry-After``,
*before* any password is hashed, until the window ends. Successful logins are not counted, and
minted upload tokens (``__token__``) never come here, so Trusted Publishing is never throttled.

Settings (``example_project/settings.py`` reads them from the environment):

* ``INDEX_LOGIN_MAX_FAILURES``: default 10; 0 turns the throttle off;
* ``INDEX_LOGIN_FAILURE_WINDOW``: default 300 (seconds).
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache


def max_failures() -> int:
    return int(getattr(settings, "INDEX_LOGIN_MAX_FAILURES", 10))


def window() -> int:
    return max(1, int(getattr(settings, "INDEX_LOGIN_FAILURE_WINDOW", 300)))


def _keys(username: str | None, address: str | None) -> list[str]:
    # Hashed: user names and addresses are arbitrary text, cache keys must not be.
    idents = []
    if username is not None:
        idents.append("user:" + username.casefold())
    if address:
        idents.append("addr:" + address)
    return [
        "index:login-failures:" + hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()[:40]
        for ident in idents
    ]


def retry_after(username: str | None, address: str | None) -> int | None:
    """Seconds until a login may be tried again, or None if it may be tried now."""
    limit = max_failures()
    if limit <= 0:
        return None
    keys = _keys(username, address)
    values = cache.get_many(keys + [key + ":reset" for key in keys])
    now = time.time()
    waits = []
    for key in keys:
        if int(values.get(key) or 0) >= limit:
            reset_at = values.get(key + ":reset")
            remaining = (reset_at - now) if isinstance(reset_at, (int, float)) else window()
            waits.append(max(1, math.ceil(remaining)))
    return max(waits) if waits else None


def record_failure(username: str | None, address: str | None) -> None:
    if max_failures() <= 0:
        return
    seconds = window()
    for key in _keys(username, address):
        # The window starts at the first failure: add() never moves an existing expiry.
        cache.add(key + ":reset", time.time() + seconds, seconds)
        if cache.add(key, 1, seconds):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, seconds)


def describe(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
