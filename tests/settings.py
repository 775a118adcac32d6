"""Settings for the test suite.

DATABASE_URL / CACHE_URL select the backends (SQLite + local memory by default; CI runs the suite
again on PostgreSQL + Redis).
"""

import os

import environ

env = environ.Env()

SECRET_KEY = "tests-only-not-secret"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "trusted_publishing",
    "example_project.index",  # the example index's in-process tests (tests/test_example_index*)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

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
    "default": env.db(
        "DATABASE_URL",
        default="sqlite:///" + os.path.join(os.path.dirname(__file__), "..", ".test-db.sqlite3"),
    )
}
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://tests")}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "trusted_publishing.backends.UploadTokenBackend",
]

STATIC_URL = "/static/"

TRUSTED_PUBLISHING = {
    "AUDIENCE": "tests.example.internal",
    "ALLOW_INSECURE_LOOPBACK_ISSUERS": True,
    "EXCHANGE_RATE_LIMIT": None,
}

SILENCED_SYSTEM_CHECKS = ["trusted_publishing.W007", "trusted_publishing.W009"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
