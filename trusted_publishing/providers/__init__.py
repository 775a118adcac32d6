"""Claim rules per provider. ``get_rules(provider_id)`` returns the rules for an issuer's kind."""

from __future__ import annotations

from .activestate import ActiveStateRules
from .base import ClaimMismatch, ProviderRules
from .github import GitHubRules
from .gitlab import GitLabRules
from .google import GoogleRules

RULES: dict[str, ProviderRules] = {
    rules.provider: rules
    for rules in (GitHubRules(), GitLabRules(), GoogleRules(), ActiveStateRules())
}


def get_rules(provider: str) -> ProviderRules:
    return RULES[provider]


__all__ = ["RULES", "ClaimMismatch", "ProviderRules", "get_rules"]
