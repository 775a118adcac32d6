"""Django settings for the benchmark (in-process runs and the gunicorn server alike).

Everything that differs between runs comes from environment variables set by the benchmark
driver, so the server workers, the purge process and the driver see the same configuration:

* ``TP_BENCH_DATABASE_URL`` - the database (PostgreSQL, or an SQLite file);
* ``TP_BENCH_CACHE_URL`` - the shared cache (Redis, or a file cache directory);
* ``TP_BENCH_CACHE_PREFIX`` - a per-run key prefix, so a shared Redis never needs flushing.

The app's settings are the production defaults except for three things a benchmark needs:
throttling is off (the load generator measures the exchange, not the rate limiter), http issuers
on loopback are allowed (the counting identity provider listens on 127.0.0.1), and the key
refresh cooldown is 5 s instead of 60 (the rotation check rotates the key seconds after the
first fetch; a real provider rotates months apart). The databases run with Django's defaults:
no pragma or server setting is tuned for speed.
"""

from __future__ import annotations

import os

import environ

env = environ.Env()

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "benchmarks.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",  # Publisher.created_by points at the user model; password hashing
    "django.contrib.contenttypes",
    "rest_framework",
    "trusted_publishing",
]

# A small but realistic stack: what every host index has in front of the app's views.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

_db = env.db_url_config(os.environ.get("TP_BENCH_DATABASE_URL", "sqlite:////tmp/tp-bench.sqlite3"))
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            # Not speed settings: several gunicorn workers write to one file, so wait for the
            # write lock instead of failing, and take it at BEGIN so a read-then-write
            # transaction cannot fail half-way (what the example index configures too).
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        }
    )
elif _db["ENGINE"].startswith("django.db.backends.postgresql"):
    # Names the process in pg_stat_activity (the purge figure samples what mints wait for).
    _db.setdefault("OPTIONS", {})["application_name"] = os.environ.get(
        "TP_BENCH_APP_NAME", "tp-bench"
    )
# Persistent connections, as production deployments use.
_db["CONN_MAX_AGE"] = 600
DATABASES = {"default": _db}

CACHES = {
    "default": env.cache_url_config(
        os.environ.get("TP_BENCH_CACHE_URL", "filecache:///tmp/tp-bench-cache")
    )
}
CACHES["default"]["KEY_PREFIX"] = os.environ.get("TP_BENCH_CACHE_PREFIX", "tpbench")

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "trusted_publishing.backends.UploadTokenBackend",
]
# PASSWORD_HASHERS is left at Django's default: figure 1 compares with its first hasher.

TRUSTED_PUBLISHING = {
    "AUDIENCE": "bench.example.internal",
    "ALLOW_INSECURE_LOOPBACK_ISSUERS": True,
    "EXCHANGE_RATE_LIMIT": None,
    "JWKS_REFRESH_COOLDOWN": 5,
}

# The counting identity provider is plain http on loopback; nothing else is reachable.
SILENCED_SYSTEM_CHECKS = ["trusted_publishing.W009"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # INFO would log one line per mint; the benchmark measures the app, not the terminal.
    "loggers": {"trusted_publishing": {"handlers": ["console"], "level": "WARNING"}},
}
