#!/usr/bin/env bash
# One-command demo of django-trusted-publishing: an example index under TLS on 127.0.0.1, the
# development identity provider (trusted_publishing.contrib.devidp, DEBUG only) playing a GitHub
# Actions job, and `uv publish` publishing through Trusted Publishing, then `pip install` from the
# index. Needs only python3 >= 3.11.
#
#   bash scripts/demo.sh [--port 8443] [--once] [--data-dir .demo]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "demo: $PYTHON not found; install Python 3.11 or newer (or set PYTHON=...)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "demo: $("$PYTHON" --version 2>&1) is too old; Python 3.11 or newer is needed" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "==> Creating .venv"
    "$PYTHON" -m venv .venv
fi

# Install only when something is missing, so a second run (or an offline machine that ran it
# once) needs no network at all.
if ! .venv/bin/python -c 'import django, rest_framework, jwt, environ, gunicorn, trustme, build, hatchling, packaging' >/dev/null 2>&1 \
        || [ ! -x .venv/bin/uv ]; then
    echo "==> Installing the app with its example extra: pip install -e '.[example]'"
    if ! .venv/bin/python -m pip install --quiet -e '.[example]'; then
        echo "demo: installing the dependencies failed (is a package index reachable?)" >&2
        exit 1
    fi
fi

exec .venv/bin/python -m example_project.demo "$@"
