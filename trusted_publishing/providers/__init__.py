"""The provider registry: one :class:`ProviderSpec` per CI provider, by provider id.

The exchange (``get_rules``), the admin screens, the publisher forms' default issuers and
``manage.py trusted_publishing`` read everything provider-specific from ``PROVIDERS``; adding a
provider means adding its entry here (see docs/providers/adding.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .activestate import ACTIVESTATE
from .base import ClaimMismatch, ProviderRules
from .github import GITHUB
from .gitlab import GITLAB
from .google import GOOGLE
from .spec import CliOption, Column, ProviderSpec, Split

PROVIDERS: dict[str, ProviderSpec] = {
    spec.id: spec for spec in (GITHUB, GITLAB, GOOGLE, ACTIVESTATE)
}


def get_rules(provider: str) -> ProviderRules:
    return PROVIDERS[provider].rules


def publisher_relations() -> list[str]:
    """``select_related`` names that fetch each provider's row with its base publisher row."""
    return list(dict.fromkeys(spec.model._meta.model_name or "" for spec in PROVIDERS.values()))


class _RulesView(Mapping[str, ProviderRules]):
    """``PROVIDERS`` seen as provider id → claim rules (always in step with it)."""

    def __getitem__(self, provider: str) -> ProviderRules:
        return PROVIDERS[provider].rules

    def __iter__(self) -> Iterator[str]:
        return iter(PROVIDERS)

    def __len__(self) -> int:
        return len(PROVIDERS)


RULES: Mapping[str, ProviderRules] = _RulesView()

__all__ = [
    "PROVIDERS",
    "RULES",
    "ClaimMismatch",
    "CliOption",
    "Column",
    "ProviderRules",
    "ProviderSpec",
    "Split",
    "get_rules",
    "publisher_relations",
]
