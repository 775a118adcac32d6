"""Settings of the example index.

Everything deployment specific is read with django-environ from the environment or from a
``.env`` file next to ``manage.py`` (see docs/example-index.md for the full list).
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Real environment variables win over the .env file (django-environ does not overwrite them).
environ.Env.read_env(BASE_DIR / ".env")

#: Where the SQLite database, uploaded files and the dev issuer's key live.
DATA_DIR = Path(env.str("INDEX_DATA_DIR", default=str(BASE_DIR / ".demo")))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="" if not DEBUG else "example-index-insecure-dev-key")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=true for a throwaway development key).")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "trusted_publishing",
    "example_project.index",
]
# The development identity provider is never installed unless DEBUG is on; its system check
# (trusted_publishing.devidp.E001) fails loudly if someone forces it into a production
# configuration, and its URLconf refuses to load without DEBUG.
DEVIDP_ENABLED = env.bool("DEVIDP_ENABLED", default=DEBUG)
if DEVIDP_ENABLED:
    INSTALLED_APPS.append("trusted_publishing.contrib.devidp")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'index.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite will not create the directory of its database file.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Several gunicorn workers share the file: wait for the write lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    # Take the write lock when a transaction starts: a read-then-write transaction cannot then
    # fail with "database is locked" when another worker wrote in between.
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://example-index")}
if env.str("CACHE_KEY_PREFIX", default=""):
    CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX")

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "trusted_publishing.backends.UploadTokenBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "/media/"

# Distributions are streamed to a temporary file above this size, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
#: Largest accepted distribution (bytes). An sdist is read up to 10x this size unpacked.
INDEX_MAX_FILE_SIZE = env.int("INDEX_MAX_FILE_SIZE", default=100 * 1024 * 1024)
#: Failed password logins on /legacy/ allowed per account and per client address within the
#: window (seconds, from the first failure); then 429 until the window ends. 0 turns it off.
#: Counted in the default cache: use a shared one (Redis, Memcached) with several workers.
INDEX_LOGIN_MAX_FAILURES = env.int("INDEX_LOGIN_MAX_FAILURES", default=10)
INDEX_LOGIN_FAILURE_WINDOW = env.int("INDEX_LOGIN_FAILURE_WINDOW", default=300)

# Behind a TLS-terminating proxy, set SECURE_PROXY_SSL_HEADER and TP's client_address override.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)

TRUSTED_PUBLISHING = {
    # Unique to this index: CI jobs request identity tokens for this audience.
    "AUDIENCE": env.str("TP_AUDIENCE", default="example-index.internal"),
    "HOST_INTEGRATION": "example_project.index.integration.IndexIntegration",
    # Master switch (False: the audience endpoint answers 403 and nothing is minted).
    "ENABLED": env.bool("TP_ENABLED", default=True),
    "UPLOAD_PATHS": ["/legacy/"],
    # CA bundle for fetching issuer keys (the demo's throwaway CA for its own dev issuer).
    "JWKS_CA_BUNDLE": env.str("TP_JWKS_CA_BUNDLE", default="") or None,
    # http:// issuers on loopback: local development and the end-to-end tests only.
    "ALLOW_INSECURE_LOOPBACK_ISSUERS": env.bool(
        "TP_ALLOW_INSECURE_LOOPBACK_ISSUERS", default=False
    ),
    "EXCHANGE_RATE_LIMIT": env.str("TP_EXCHANGE_RATE_LIMIT", default="120/min") or None,
    "TOKEN_LIFETIME": env.int("TP_TOKEN_LIFETIME", default=900),
    # Issuer key fetching (the outage tests shorten these).
    "JWKS_FETCH_TIMEOUT": env.float("TP_JWKS_FETCH_TIMEOUT", default=5.0),
    "JWKS_REFRESH_COOLDOWN": env.int("TP_JWKS_REFRESH_COOLDOWN", default=60),
    "JWKS_MAX_AGE": env.int("TP_JWKS_MAX_AGE", default=3600),
    "JWKS_MAX_BYTES": env.int("TP_JWKS_MAX_BYTES", default=256 * 1024),
}

#: The development identity provider (trusted_publishing.contrib.devidp, DEBUG only).
DEVIDP = {
    # Its issuer URL (= `iss`); empty: derived from the request (https://host:port/_dev/idp).
    "ISSUER": env.str("DEVIDP_ISSUER", default=""),
    # The bearer token a CI job would hold in ACTIONS_ID_TOKEN_REQUEST_TOKEN.
    "REQUEST_TOKEN": env.str("DEVIDP_REQUEST_TOKEN", default="dev-request-token"),
    "KEY_FILE": env.str("DEVIDP_KEY_FILE", default=str(DATA_DIR / "devidp-key.pem")),
    # Default claims of the CI job being played; each can be overridden per request (?repository=).
    "CLAIMS": {
        "repository": env.str("DEVIDP_REPOSITORY", default="acme/hello-index"),
        "workflow": env.str("DEVIDP_WORKFLOW", default="release.yml"),
        "environment": env.str("DEVIDP_ENVIRONMENT", default="pypi"),
        "ref": env.str("DEVIDP_REF", default="refs/tags/v0.1.0"),
        "event_name": env.str("DEVIDP_EVENT_NAME", default="push"),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "trusted_publishing": {
            "handlers": ["console"],
            "level": env.str("TP_LOG_LEVEL", default="INFO"),
        },
        "example_project": {"handlers": ["console"], "level": "INFO"},
        # Unhandled exceptions (500s) with their tracebacks; bodies and headers are not logged.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
