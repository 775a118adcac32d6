"""Settings reload with override_settings, and the system checks that catch misconfiguration."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Error, Warning, run_checks
from django.test import override_settings

from trusted_publishing.checks import check_settings
from trusted_publishing.conf import DEFAULTS, override_tp_settings, tp_settings
from trusted_publishing.integration import HostIntegration

BASE = {"AUDIENCE": "pkgs.example.internal"}
REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def ids_for(conf: Any, *, debug: bool = False, caches: dict | None = None) -> set[str]:
    with override_settings(TRUSTED_PUBLISHING=conf, DEBUG=debug, CACHES=caches or REDIS):
        return {message.id for message in check_settings()}


class NotAnIntegration:
    pass


class Integration(HostIntegration):
    pass


def test_settings_follow_override_settings() -> None:
    assert tp_settings.AUDIENCE == "tests.example.internal"
    with override_settings(
        TRUSTED_PUBLISHING={"AUDIENCE": "other.example", "TOKEN_LIFETIME": 1800}
    ):
        assert tp_settings.AUDIENCE == "other.example"
        assert tp_settings.TOKEN_LIFETIME == 1800
        assert tp_settings.JWT_LEEWAY == DEFAULTS["JWT_LEEWAY"]
    assert tp_settings.AUDIENCE == "tests.example.internal"
    assert tp_settings.TOKEN_LIFETIME == 900


def test_override_tp_settings_keeps_other_keys() -> None:
    with override_tp_settings(TOKEN_PREFIX="acme_"):
        assert tp_settings.TOKEN_PREFIX == "acme_"
        assert tp_settings.AUDIENCE == "tests.example.internal"
        assert settings.TRUSTED_PUBLISHING["ALLOW_INSECURE_LOOPBACK_ISSUERS"] is True
    assert tp_settings.TOKEN_PREFIX == "pypi-"


def test_integration_setting_is_imported() -> None:
    with override_tp_settings(HOST_INTEGRATION=f"{__name__}.Integration"):
        assert tp_settings.HOST_INTEGRATION is Integration


def test_unknown_attribute_is_an_error() -> None:
    with pytest.raises(AttributeError):
        tp_settings.AUDIENCES  # noqa: B018


def test_a_good_configuration_passes() -> None:
    assert ids_for(BASE) == set()


@pytest.mark.parametrize(
    "conf,expected",
    [
        ({}, "trusted_publishing.E001"),
        ({"AUDIENCE": "  "}, "trusted_publishing.E001"),
        ({"AUDIENCE": None}, "trusted_publishing.E001"),
        ({"AUDIENCE": "pypi"}, "trusted_publishing.W002"),
        ({"AUDIENCE": "PyPI"}, "trusted_publishing.W002"),
        ({**BASE, "TOKEN_LIFETIME": 899}, "trusted_publishing.E003"),
        ({**BASE, "TOKEN_LIFETIME": 21601}, "trusted_publishing.E003"),
        ({**BASE, "TOKEN_LIFETIME": "900"}, "trusted_publishing.E003"),
        ({**BASE, "TOKEN_LIFETIME": True}, "trusted_publishing.E003"),
        ({**BASE, "JWT_LEEWAY": 3600}, "trusted_publishing.E004"),
        ({**BASE, "DEFAULT_FEATURE": "macaroon"}, "trusted_publishing.E005"),
        ({**BASE, "HOST_INTEGRATION": "no.such.Module"}, "trusted_publishing.E006"),
        ({**BASE, "HOST_INTEGRATION": f"{__name__}.NotAnIntegration"}, "trusted_publishing.E006"),
        ({**BASE, "CACHE_ALIAS": "nope"}, "trusted_publishing.E008"),
        ({**BASE, "TOKEN_PREFIX": "pypi token"}, "trusted_publishing.E010"),
        ({**BASE, "AUDIENCES": "typo"}, "trusted_publishing.E011"),
        ({**BASE, "EXCHANGE_RATE_LIMIT": "lots"}, "trusted_publishing.E012"),
        ({**BASE, "EXCHANGE_RATE_LIMIT": 120}, "trusted_publishing.E012"),
        ({**BASE, "UPLOAD_PATHS": ["legacy/"]}, "trusted_publishing.E013"),
        ({**BASE, "PENDING_PUBLISHER_LIFETIME": 0}, "trusted_publishing.E014"),
        ({**BASE, "JWKS_FETCH_TIMEOUT": 0}, "trusted_publishing.E015"),
        # An environment string such as "false" is truthy: refused rather than guessed at.
        ({**BASE, "ENABLED": "false"}, "trusted_publishing.E017"),
        ({**BASE, "ALLOW_INSECURE_LOOPBACK_ISSUERS": "no"}, "trusted_publishing.E017"),
    ],
)
def test_misconfiguration_is_reported(conf: dict[str, Any], expected: str) -> None:
    assert expected in ids_for(conf)


@pytest.mark.parametrize("lifetime", [900, 3600, 21600])
def test_lifetime_bounds_are_inclusive(lifetime: int) -> None:
    assert ids_for({**BASE, "TOKEN_LIFETIME": lifetime}) == set()


def test_valid_rate_limits() -> None:
    for rate in ("120/min", "10/s", "1000/hour", "5/day", None):
        assert ids_for({**BASE, "EXCHANGE_RATE_LIMIT": rate}) == set()


def test_process_local_cache_warns_only_without_debug() -> None:
    assert "trusted_publishing.W007" in ids_for(BASE, caches=LOCMEM)
    assert "trusted_publishing.W007" not in ids_for(BASE, caches=LOCMEM, debug=True)


def test_insecure_loopback_issuers_warn_without_debug() -> None:
    conf = {**BASE, "ALLOW_INSECURE_LOOPBACK_ISSUERS": True}
    assert "trusted_publishing.W009" in ids_for(conf)
    assert "trusted_publishing.W009" not in ids_for(conf, debug=True)


def test_settings_must_be_a_dict() -> None:
    assert ids_for(["AUDIENCE"]) == {"trusted_publishing.E000"}


def test_checks_are_registered_with_django(db: Any) -> None:
    with override_settings(TRUSTED_PUBLISHING={"AUDIENCE": "pypi", "TOKEN_LIFETIME": 60}):
        found = {m.id for m in run_checks() if m.id and m.id.startswith("trusted_publishing.")}
    assert {"trusted_publishing.W002", "trusted_publishing.E003"} <= found


class _SplitRouter:
    """Sends the audit trail to another database than the tokens."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "audit" if model._meta.model_name == "auditevent" else None

    db_for_write = db_for_read


def test_models_split_across_databases_are_refused() -> None:
    assert "trusted_publishing.E018" not in {m.id for m in run_checks()}
    with override_settings(DATABASE_ROUTERS=[f"{__name__}._SplitRouter"]):
        messages = {m.id: m for m in run_checks()}
    assert "trusted_publishing.E018" in messages
    assert "AuditEvent → audit/audit" in messages["trusted_publishing.E018"].msg


# --- URL placement (E020 / W021) ----------------------------------------------------------------
class _PrefixedUrls:
    """A URLconf that mounts the app under tp/, not at the site root."""

    from django.urls import include, path

    urlpatterns = [path("tp/", include("trusted_publishing.urls"))]


class _NoAppUrls:
    urlpatterns: list[Any] = []


def root_route_messages(urlconf: Any) -> dict[str, Any]:
    from trusted_publishing.checks import check_root_routes

    with override_settings(ROOT_URLCONF=urlconf):
        return {m.id: m for m in check_root_routes()}


def test_routes_at_the_site_root_pass() -> None:
    assert root_route_messages("tests.urls") == {}
    assert "trusted_publishing.E020" not in {m.id for m in run_checks()}


def test_routes_under_a_prefix_are_an_error() -> None:
    messages = root_route_messages(_PrefixedUrls)
    assert set(messages) == {"trusted_publishing.E020"}
    error = messages["trusted_publishing.E020"]
    assert isinstance(error, Error)
    assert "/tp/_/oidc/mint-token, not /_/oidc/mint-token" in error.msg
    assert "/tp/.well-known/pytp, not /.well-known/pytp" in error.msg
    assert 'path("", include("trusted_publishing.urls"))' in error.hint
    with override_settings(ROOT_URLCONF=_PrefixedUrls):
        assert "trusted_publishing.E020" in {m.id for m in run_checks()}


def test_routes_not_included_are_a_warning() -> None:
    messages = root_route_messages(_NoAppUrls)
    assert set(messages) == {"trusted_publishing.W021"}
    assert isinstance(messages["trusted_publishing.W021"], Warning)
    assert (
        'path("", include("trusted_publishing.urls"))' in messages["trusted_publishing.W021"].hint
    )


def test_hints_link_the_published_docs_not_repository_paths() -> None:
    from pathlib import Path

    from trusted_publishing import checks

    assert checks.DOCS_URL.startswith("https://")
    source = Path(checks.__file__).read_text(encoding="utf-8")
    assert not re.search(r"docs/[\w/-]+\.md", source), "a hint names a repository path"
    hint = next(iter(ids_for_messages({**BASE, "AUDIENCES": "typo"}))).hint
    assert checks.DOCS_URL in hint


def ids_for_messages(conf: Any) -> list[Any]:
    with override_settings(TRUSTED_PUBLISHING=conf, CACHES=REDIS):
        return [m for m in check_settings() if m.id == "trusted_publishing.E011"]
