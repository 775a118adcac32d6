"""Rate limit for the exchange endpoints, kept in the shared cache so all workers count together."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .cache import get_cache
from .conf import tp_settings


class ExchangeRateThrottle(SimpleRateThrottle):
    scope = "trusted_publishing"

    def __init__(self) -> None:
        # Read at request time (not import time) so override_settings applies.
        self.cache = get_cache()
        self.rate = tp_settings.EXCHANGE_RATE_LIMIT
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str | None:
        return tp_settings.EXCHANGE_RATE_LIMIT

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
