"""The ``TRUSTED_PUBLISHING`` settings dict, read through one lazy object.

Every value is read from ``django.conf.settings`` when it is used (never at import time) and the
cache is cleared in place on ``setting_changed``, so ``override_settings`` works in tests and the
object imported elsewhere never goes stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.test.utils import override_settings
from django.utils.module_loading import import_string

SETTINGS_NAME = "TRUSTED_PUBLISHING"

#: PEP 807: a minted credential must live at least 15 minutes and at most 6 hours.
MIN_TOKEN_LIFETIME = 900
MAX_TOKEN_LIFETIME = 21600

#: Every default is the safe choice; documented in docs/settings.md (a test keeps the two in step).
DEFAULTS: dict[str, Any] = {
    # The `aud` claim identity tokens must carry. Deployment specific: a token minted for PyPI
    # ("pypi") or another index must never be accepted here. Required.
    "AUDIENCE": None,
    # Master switch: when False the audience endpoint answers 403 and nothing is minted.
    "ENABLED": True,
    # Lifetime of minted upload tokens, in seconds (PEP 807 bounds: 900..21600).
    "TOKEN_LIFETIME": 900,
    # Clock-skew allowance for exp/nbf/iat of identity tokens, in seconds.
    "JWT_LEEWAY": 30,
    # Prefix of minted tokens. "pypi-" keeps pypa/gh-action-pypi-publish from warning and lets
    # secret scanners recognise leaked tokens.
    "TOKEN_PREFIX": "pypi-",
    # Feature used when a mint request names none: "multi-use-token" or "single-use-token".
    "DEFAULT_FEATURE": "multi-use-token",
    # Pending publishers (for projects that do not exist yet) expire after this many seconds.
    "PENDING_PUBLISHER_LIFETIME": 30 * 24 * 3600,
    # Dotted path of the host integration class (see trusted_publishing.integration).
    "HOST_INTEGRATION": "trusted_publishing.integration.HostIntegration",
    # For trusted_publishing.integration.ProjectModelIntegration: the host's Project model
    # ("app_label.Model"), its field of PEP 503 normalised names, the field set when a pending
    # publisher creates a project, and an optional boolean field that refuses uploads.
    "PROJECT_MODEL": None,
    "PROJECT_LOOKUP_FIELD": "normalized_name",
    "PROJECT_CREATE_FIELD": "name",
    "PROJECT_ARCHIVED_FIELD": None,
    # Upload URL paths of this index, for PEP 807 discovery (other paths answer 404).
    "UPLOAD_PATHS": ["/legacy/"],
    # Django cache alias holding issuers' key sets and the rate-limit counters. It must be
    # shared by all worker processes (Redis, Memcached, database) in production.
    "CACHE_ALIAS": "default",
    # Key fetching: per-request timeout (s), largest accepted document (bytes), minimum time
    # between two refetches of one issuer's keys (s; after a successful fetch at most 10 s, so a
    # new key is picked up within 10 s), and the age after which keys are refreshed even without
    # an unknown key id (s), so keys an issuer withdrew stop verifying.
    "JWKS_FETCH_TIMEOUT": 5.0,
    "JWKS_MAX_BYTES": 256 * 1024,
    "JWKS_REFRESH_COOLDOWN": 60,
    "JWKS_MAX_AGE": 3600,
    # CA bundle for fetching issuer keys (None: the environment's CA variables if
    # JWKS_TRUST_ENV, else the bundle requests ships with). Wins over the environment.
    "JWKS_CA_BUNDLE": None,
    # Key fetching honours HTTPS_PROXY/ALL_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
    # SSL_CERT_FILE, SSL_CERT_DIR (an egress proxy, a corporate CA). False ignores them.
    "JWKS_TRUST_ENV": True,
    # Hosts an issuer's jwks_uri may name besides the issuer's own host and port, per issuer URL:
    # {"https://issuer.example": ["keys.example"]} ("host" = port 443, or "host:port"). Google's
    # www.googleapis.com for https://accounts.google.com is built in.
    "JWKS_ALLOWED_HOSTS": {},
    # Allow http:// issuers on loopback addresses (local development and tests only).
    "ALLOW_INSECURE_LOOPBACK_ISSUERS": False,
    # GitHub events that may never publish (privileged triggers that run with fork input).
    "GITHUB_DENIED_EVENTS": ["pull_request_target", "workflow_run"],
    # DRF throttle rate for the exchange endpoints, per client address (None disables).
    "EXCHANGE_RATE_LIMIT": "120/min",
    # Rate-limit key of IPv6 clients: their address's network of this prefix length (one host
    # usually owns a whole /64, so keying by the exact address never throttles it).
    "EXCHANGE_RATE_LIMIT_IPV6_PREFIX": 64,
    # Refused exchanges with no verified identity (malformed bodies, bad signatures, unknown
    # issuers) are counted per error code and minute; only the 1st, 10th, 100th, ... of each
    # minute is written to the audit trail, so a flood cannot fill it.
    "AUDIT_SAMPLE_UNVERIFIED": True,
    # Days `trusted_publishing purge` keeps audit events (None keeps them for ever).
    "AUDIT_RETENTION_DAYS": 365,
    # Largest accepted body of the mint and burn endpoints, in bytes.
    "MAX_REQUEST_BYTES": 32 * 1024,
}

#: Settings that hold dotted paths, resolved on access.
IMPORT_STRINGS = {"HOST_INTEGRATION"}


class TrustedPublishingSettings:
    """Attribute access to ``settings.TRUSTED_PUBLISHING`` merged over :data:`DEFAULTS`."""

    def __init__(self) -> None:
        self._cached: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTINGS_NAME, None) or {}
        if not isinstance(value, dict):
            return {}
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Invalid {SETTINGS_NAME} setting: {name!r}")
        if name in self._cached:
            return self._cached[name]
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        self._cached[name] = value
        return value

    def reload(self) -> None:
        self._cached.clear()


tp_settings = TrustedPublishingSettings()


def is_enabled() -> bool:
    """Trusted publishing is on only when switched on *and* an audience is configured."""
    audience = tp_settings.AUDIENCE
    return bool(tp_settings.ENABLED) and isinstance(audience, str) and bool(audience.strip())


@receiver(setting_changed)
def _reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        tp_settings.reload()


@contextmanager
def override_tp_settings(**overrides: Any) -> Iterator[None]:
    """Test helper: override some ``TRUSTED_PUBLISHING`` keys, keeping the others."""
    merged = {**tp_settings.user_settings, **overrides}
    with override_settings(**{SETTINGS_NAME: merged}):
        yield
