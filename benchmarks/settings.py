"""Django settings for the benchmark (in-process runs and the gunicorn server alike).

Everything that differs between runs comes from environment variables set by the benchmark
driver, so the server workers and the driver process see exactly the same configuration:

* ``TP_BENCH_DATABASE_URL`` - the database (SQLite file or PostgreSQL);
* ``TP_BENCH_CACHE_URL`` - the shared cache (Redis, or a file cache directory);
* ``TP_BENCH_CACHE_PREFIX`` - a per-run key prefix, so a shared Redis never needs flushing.

The app's own settings are the production defaults except for throttling (off, so the load
generator measures the exchange, not the rate limiter) and loopback http issuers (the counting
identity provider of the benchmark listens on 127.0.0.1).
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
    "django.contrib.auth",  # Publisher.created_by points at the user model
    "django.contrib.contenttypes",
    "rest_framework",
    "trusted_publishing",
]

# A small but realistic stack: what every host index has in front of the app's views.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

_sqlite_sync = os.environ.get("TP_BENCH_SQLITE_SYNC", "NORMAL").upper()
if _sqlite_sync not in {"NORMAL", "FULL"}:
    raise ValueError("TP_BENCH_SQLITE_SYNC must be NORMAL or FULL")
_db_url = os.environ.get("TP_BENCH_DATABASE_URL", "sqlite:////tmp/tp-bench.sqlite3")
_db = env.db_url_config(_db_url)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            # WAL: a commit appends to the log instead of rewriting the journal and readers
            # never block the writer. synchronous=NORMAL (SQLite's recommendation for WAL) syncs
            # at checkpoints, not at every commit: safe from corruption and from process
            # crashes, but the last commits can be lost on power failure. TP_BENCH_SQLITE_SYNC=FULL
            # measures an fsync per commit instead.
            # mmap_size and temp_store: the production settings commonly recommended for Django
            # on SQLite (pages are read through a memory map, not a read() call each). A larger
            # page cache (cache_size=-65536) measured slower here at 100,000 rows: with the
            # memory map, SQLite's own cache mostly duplicates the operating system's.
            "init_command": (
                f"PRAGMA journal_mode=WAL; PRAGMA synchronous={_sqlite_sync}; "
                "PRAGMA mmap_size=134217728; PRAGMA temp_store=MEMORY;"
            ),
            # Two gunicorn workers write concurrently: take the write lock at BEGIN instead of
            # failing to upgrade a read lock half-way through a transaction.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
# Persistent connections, as production deployments use (a new SQLite connection per request
# costs a file open, the PRAGMAs and Django's function registrations).
_db["CONN_MAX_AGE"] = 600
DATABASES = {"default": _db}

_cache_url = os.environ.get("TP_BENCH_CACHE_URL", "filecache:///tmp/tp-bench-cache")
CACHES = {"default": env.cache_url_config(_cache_url)}
CACHES["default"]["KEY_PREFIX"] = os.environ.get("TP_BENCH_CACHE_PREFIX", "tpbench")

AUTHENTICATION_BACKENDS = ["trusted_publishing.backends.UploadTokenBackend"]

TRUSTED_PUBLISHING = {
    "AUDIENCE": "bench.example.internal",
    "ALLOW_INSECURE_LOOPBACK_ISSUERS": True,
    "EXCHANGE_RATE_LIMIT": None,
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
