"""Rate limit for the exchange endpoints, kept in the shared cache so all workers count together."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .cache import get_cache
from .conf import tp_settings
from .integration import get_integration


class ExchangeRateThrottle(SimpleRateThrottle):
    scope = "trusted_publishing"

    def __init__(self) -> None:
        # Read at request time (not import time) so override_settings applies.
        self.cache = get_cache()
        self.rate = tp_settings.EXCHANGE_RATE_LIMIT
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str | None:
        return tp_settings.EXCHANGE_RATE_LIMIT

    def allow_request(self, request: HttpRequest | Request, view: Any) -> bool:
        if self.rate is None:
            return True
        return super().allow_request(request, view)

    def get_ident(self, request: HttpRequest | Request) -> str:
        # DRF's default trusts X-Forwarded-For whenever NUM_PROXIES is unset, so every request
        # could claim a fresh address. Honour NUM_PROXIES only if the project set it; otherwise
        # ask the host integration (REMOTE_ADDR unless the host knows its proxies).
        if api_settings.NUM_PROXIES is not None:
            return super().get_ident(request)
        return get_integration().client_address(getattr(request, "_request", request)) or ""

    def get_cache_key(self, request: HttpRequest | Request, view: Any) -> str | None:
        ident = client_bucket(self.get_ident(request))
        if not ident:
            # No address at all (a proxy set-up that hides it): one shared bucket would let one
            # client lock everyone out, so such requests are not counted (see docs/settings.md).
            return None
        # Hashed: the address may come from a header (memcached rejects long/odd keys).
        digest = hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest[:32]}


def client_bucket(address: str) -> str:
    """The rate-limit bucket of a client address: IPv4 addresses as they are, IPv6 addresses by
    their network (``EXCHANGE_RATE_LIMIT_IPV6_PREFIX``, /64 by default: a single host usually
    holds a whole /64, and rotating through it must not escape the limit)."""
    address = address.strip()
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a host integration's own label): as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        prefix = int(tp_settings.EXCHANGE_RATE_LIMIT_IPV6_PREFIX)
        return str(ipaddress.IPv6Network((ip, prefix), strict=False))
    return str(ip)
