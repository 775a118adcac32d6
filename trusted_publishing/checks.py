"""System checks: misconfiguration is reported by ``manage.py check`` and at start-up."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import DEFAULTS, MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, SETTINGS_NAME

#: The published documentation; check hints link to its pages, never to repository paths.
DOCS_URL = "https://django-trusted-publishing.readthedocs.io/en/latest/"
SETTINGS_DOCS_URL = f"{DOCS_URL}settings/"

#: Where clients look for the exchange routes: they derive these paths from the upload URL's
#: host, so the app's URLs must be included at the site root.
ROOT_ROUTES = {
    "trusted_publishing:mint-token": "/_/oidc/mint-token",
    "trusted_publishing:discovery": "/.well-known/pytp",
}

#: Audiences that belong to someone else or to nobody: tokens for them are not ours alone.
GENERIC_AUDIENCES = {
    "pypi",
    "testpypi",
    "sigstore",
    "localhost",
    "example",
    "index",
    "audience",
    "changeme",
    "change-me",
    "api://azureadtokenexchange",
}
_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")
_FEATURES = {"single-use-token", "multi-use-token"}
_SINGLE_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _conf() -> dict[str, Any]:
    value = getattr(settings, SETTINGS_NAME, None)
    return value if isinstance(value, dict) else {}


def _get(name: str) -> Any:
    return _conf().get(name, DEFAULTS[name])


@register(Tags.security, deploy=False)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    raw = getattr(settings, SETTINGS_NAME, None)
    if raw is not None and not isinstance(raw, dict):
        return [Error(f"{SETTINGS_NAME} must be a dict.", id="trusted_publishing.E000")]

    for name in sorted(set(_conf()) - set(DEFAULTS)):
        messages.append(
            Error(
                f"Unknown setting {SETTINGS_NAME}[{name!r}].",
                hint=f"See {SETTINGS_DOCS_URL} for the settings this app reads.",
                id="trusted_publishing.E011",
            )
        )

    audience = _get("AUDIENCE")
    if not isinstance(audience, str) or not audience.strip():
        messages.append(
            Error(
                f"{SETTINGS_NAME}['AUDIENCE'] is not set.",
                hint="Set it to a value unique to this index, e.g. its host name "
                "('pkgs.example.internal'); CI jobs request identity tokens for it.",
                id="trusted_publishing.E001",
            )
        )
    elif audience.strip().lower() in GENERIC_AUDIENCES:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['AUDIENCE'] is the generic value {audience!r}.",
                hint="Tokens minted for another service with this audience would be accepted "
                "here. Use a value unique to this index, such as its host name.",
                id="trusted_publishing.W002",
            )
        )

    lifetime = _get("TOKEN_LIFETIME")
    if (
        not isinstance(lifetime, int)
        or isinstance(lifetime, bool)
        or not MIN_TOKEN_LIFETIME <= lifetime <= MAX_TOKEN_LIFETIME
    ):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['TOKEN_LIFETIME'] must be an integer number of seconds between "
                f"{MIN_TOKEN_LIFETIME} and {MAX_TOKEN_LIFETIME} (PEP 807); got {lifetime!r}.",
                id="trusted_publishing.E003",
            )
        )

    leeway = _get("JWT_LEEWAY")
    if not isinstance(leeway, int | float) or isinstance(leeway, bool) or not 0 <= leeway <= 300:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['JWT_LEEWAY'] must be 0..300 seconds; got {leeway!r}.",
                id="trusted_publishing.E004",
            )
        )

    if _get("DEFAULT_FEATURE") not in _FEATURES:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['DEFAULT_FEATURE'] must be one of {sorted(_FEATURES)}.",
                id="trusted_publishing.E005",
            )
        )

    integration = _get("HOST_INTEGRATION")
    try:
        cls = import_string(integration) if isinstance(integration, str) else integration
        from .integration import HostIntegration

        if not (isinstance(cls, type) and issubclass(cls, HostIntegration)):
            raise TypeError("not a HostIntegration subclass")
    except Exception as exc:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['HOST_INTEGRATION'] = {integration!r} cannot be used: {exc}.",
                hint="Name a subclass of trusted_publishing.integration.HostIntegration.",
                id="trusted_publishing.E006",
            )
        )

    alias = _get("CACHE_ALIAS")
    caches_conf = getattr(settings, "CACHES", {})
    if alias not in caches_conf:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['CACHE_ALIAS'] = {alias!r} is not in CACHES.",
                id="trusted_publishing.E008",
            )
        )
    elif caches_conf[alias].get("BACKEND") in _SINGLE_PROCESS_CACHES and not settings.DEBUG:
        messages.append(
            Warning(
                f"The cache {alias!r} ({caches_conf[alias].get('BACKEND')}) is not shared "
                "between processes.",
                hint="With several workers, key refetch limits, rate limits and token lookups "
                "are per process. Use Redis, Memcached or the database cache in production.",
                id="trusted_publishing.W007",
            )
        )

    if _get("ALLOW_INSECURE_LOOPBACK_ISSUERS") and not settings.DEBUG:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['ALLOW_INSECURE_LOOPBACK_ISSUERS'] is on while DEBUG is off.",
                hint="Only local test issuers need http://; turn it off in production.",
                id="trusted_publishing.W009",
            )
        )

    prefix = _get("TOKEN_PREFIX")
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", prefix):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['TOKEN_PREFIX'] must be 1-20 letters, digits, '-' or '_'.",
                id="trusted_publishing.E010",
            )
        )

    rate = _get("EXCHANGE_RATE_LIMIT")
    if rate is not None and not (isinstance(rate, str) and _RATE.match(rate)):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['EXCHANGE_RATE_LIMIT'] must look like '120/min' or be None; "
                f"got {rate!r}.",
                id="trusted_publishing.E012",
            )
        )

    paths = _get("UPLOAD_PATHS")
    if not isinstance(paths, list | tuple) or not all(
        isinstance(p, str) and p.startswith("/") for p in paths
    ):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['UPLOAD_PATHS'] must be a list of paths starting with '/'.",
                id="trusted_publishing.E013",
            )
        )

    pending = _get("PENDING_PUBLISHER_LIFETIME")
    if not isinstance(pending, int) or isinstance(pending, bool) or pending <= 0:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['PENDING_PUBLISHER_LIFETIME'] must be a positive number of "
                "seconds.",
                id="trusted_publishing.E014",
            )
        )

    for name in (
        "JWKS_FETCH_TIMEOUT",
        "JWKS_MAX_BYTES",
        "JWKS_REFRESH_COOLDOWN",
        "JWKS_MAX_AGE",
        "MAX_REQUEST_BYTES",
    ):
        value = _get(name)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            messages.append(
                Error(
                    f"{SETTINGS_NAME}[{name!r}] must be a positive number; got {value!r}.",
                    id="trusted_publishing.E015",
                )
            )

    for name in ("ENABLED", "ALLOW_INSECURE_LOOPBACK_ISSUERS", "JWKS_TRUST_ENV"):
        if not isinstance(_get(name), bool):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}[{name!r}] must be True or False; got {_get(name)!r}.",
                    id="trusted_publishing.E017",
                )
            )

    messages.extend(_check_jwks_allowed_hosts(_get("JWKS_ALLOWED_HOSTS")))

    return messages


def _check_jwks_allowed_hosts(value: Any) -> list[CheckMessage]:
    """JWKS_ALLOWED_HOSTS: {issuer URL: [host or host:port, ...]} (E019)."""
    from .keys import parse_host_entry

    problem = None
    if not isinstance(value, dict):
        problem = f"must be a dict of issuer URL to a list of hosts; got {value!r}"
    else:
        for issuer, hosts in value.items():
            if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
                problem = f"has a key that is not an issuer URL: {issuer!r}"
            elif not isinstance(hosts, list | tuple) or isinstance(hosts, str):
                problem = f"[{issuer!r}] must be a list of host names; got {hosts!r}"
            else:
                bad = [host for host in hosts if parse_host_entry(host) is None]
                if bad:
                    problem = (
                        f"[{issuer!r}] holds entries that are not a host name or host:port "
                        f"(no scheme, path or wildcard): {bad!r}"
                    )
            if problem:
                break
    if problem is None:
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['JWKS_ALLOWED_HOSTS'] {problem}.",
            hint='Example: {"https://issuer.example": ["keys.issuer.example"]}.',
            id="trusted_publishing.E019",
        )
    ]


@register(Tags.models)
def check_one_database(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every model of the app must live in one database: a mint writes the replay record, the
    token and its audit event in one transaction, and an upload checks the token and its
    publisher together. Split across databases, neither would be atomic."""
    from django.apps import apps
    from django.db import router

    models = apps.get_app_config("trusted_publishing").get_models()
    aliases = {
        model.__name__: (router.db_for_read(model), router.db_for_write(model)) for model in models
    }
    used = {alias for pair in aliases.values() for alias in pair}
    if len(used) <= 1:
        return []
    detail = ", ".join(f"{name} → {r}/{w}" for name, (r, w) in sorted(aliases.items()))
    return [
        Error(
            "The trusted_publishing models are routed to more than one database "
            f"(read/write: {detail}).",
            hint="Route every model of the trusted_publishing app to one database in your "
            "DATABASE_ROUTERS: a mint and an upload check must each be one transaction.",
            id="trusted_publishing.E018",
        )
    ]


@register(Tags.models)
def check_project_model(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """ProjectModelIntegration needs a model with the fields its settings name."""
    from .integration import ProjectModelIntegration

    integration = _get("HOST_INTEGRATION")
    try:
        cls = import_string(integration) if isinstance(integration, str) else integration
    except Exception:
        return []  # E006 reports it
    if not (isinstance(cls, type) and issubclass(cls, ProjectModelIntegration)):
        return []
    from django.apps import apps

    integration = cls()
    label = integration.config("model")
    problem = ""
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError, TypeError):
        model, problem = None, f"PROJECT_MODEL = {label!r} names no installed model"
    if model is not None:
        names = {f.name for f in model._meta.get_fields()}
        for setting in ("lookup_field", "create_field", "archived_field"):
            field = integration.config(setting)
            if field is not None and field not in names:
                problem = f"PROJECT_{setting.upper()} = {field!r} is not a field of {label}"
                break
    if not problem:
        return []
    return [
        Error(
            f"{SETTINGS_NAME}: {problem} (ProjectModelIntegration).",
            hint="Name your Project model ('app_label.Model') and its fields; see "
            "the settings page of the documentation.",
            id="trusted_publishing.E022",
        )
    ]


@register(Tags.urls)
def check_root_routes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The exchange routes must be at the site root (E020), and included at all (W021)."""
    from django.urls import NoReverseMatch, reverse

    wrong = []
    for name, expected in ROOT_ROUTES.items():
        try:
            found = reverse(name)
        except NoReverseMatch:
            return [
                Warning(
                    "The trusted_publishing URLs are not included in ROOT_URLCONF: CI jobs "
                    "cannot discover the index or exchange identity tokens.",
                    hint='Add path("", include("trusted_publishing.urls")) to your root URLconf '
                    f"(see {DOCS_URL}integration/).",
                    id="trusted_publishing.W021",
                )
            ]
        if found != expected:
            wrong.append(f"{name} is {found}, not {expected}")
    if not wrong:
        return []
    return [
        Error(
            "The trusted_publishing URLs are not at the site root: " + "; ".join(wrong) + ".",
            hint="Clients derive these paths from the upload URL's host. Include the app with "
            'path("", include("trusted_publishing.urls")) in your root URLconf, not under a '
            f"prefix (see {DOCS_URL}integration/).",
            id="trusted_publishing.E020",
        )
    ]
