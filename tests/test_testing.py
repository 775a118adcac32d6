"""trusted_publishing.testing: the TestIssuer integrators (and this suite) build tokens with."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.conf import override_tp_settings
from trusted_publishing.testing import KNOWN_CLAIMS, TestIssuer

PROVIDERS = sorted(KNOWN_CLAIMS)


def claims_of(provider: str, **kwargs: Any) -> dict[str, Any]:
    return getattr(TestIssuer("https://issuer.test"), f"{provider}_claims")(**kwargs)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_audience_sets_aud(provider: str) -> None:
    claims = claims_of(provider, audience="other.example")
    assert claims["aud"] == "other.example"
    assert "audience" not in claims


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_audience_defaults_to_the_setting(provider: str) -> None:
    with override_tp_settings(AUDIENCE="configured.example"):
        assert claims_of(provider)["aud"] == "configured.example"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_lifetime_sets_exp(provider: str) -> None:
    claims = claims_of(provider, lifetime=42)
    assert claims["exp"] - claims["iat"] == 42
    assert "lifetime" not in claims


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("keyword", ["audiance", "lifetme", "extra", "padding"])
def test_an_unknown_keyword_is_a_type_error(provider: str, keyword: str) -> None:
    with pytest.raises(TypeError, match=f"'{keyword}'"):
        claims_of(provider, **{keyword: "x"})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_audience_and_aud_together_are_a_type_error(provider: str) -> None:
    with pytest.raises(TypeError, match="audience"):
        claims_of(provider, audience="a.example", aud="b.example")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_known_and_registered_claims_override(provider: str) -> None:
    claim = sorted(KNOWN_CLAIMS[provider] - {"iss", "aud", "exp", "iat", "nbf", "jti", "sub"})[0]
    claims = claims_of(provider, **{claim: "overridden"}, aud="raw.example", jti="j-1")
    assert (claims[claim], claims["aud"], claims["jti"]) == ("overridden", "raw.example", "j-1")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_extra_claims_adds_claims_a_provider_never_sends(provider: str) -> None:
    claims = claims_of(provider, extra_claims={"padding": "p", "audience": "a claim after all"})
    assert (claims["padding"], claims["audience"]) == ("p", "a claim after all")


def test_github_custom_property_claims_are_known() -> None:
    assert claims_of("github", repo_property_team="platform")["repo_property_team"] == "platform"
    with pytest.raises(TypeError):
        claims_of("gitlab", repo_property_team="platform")
