#!/usr/bin/env bash
# The test command: creates .venv (Python >= 3.11) if needed, installs the project with its test
# extras, checks lint and migrations, and runs pytest. Arguments go to pytest.
# Backends: SQLite + local-memory cache by default; set DATABASE_URL / CACHE_URL to run on
# PostgreSQL / Redis (e.g. postgres://postgres:postgres@127.0.0.1:5432/tp, redis://127.0.0.1:6379/1).
set -uo pipefail
cd "$(dirname "$0")/.."

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            echo "$candidate"; return
        fi
    done
    echo "error: Python >= 3.11 is required" >&2
    exit 1
}

VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$(pick_python)" -m venv "$VENV" || exit 1
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if [ -z "${TP_SKIP_INSTALL:-}" ]; then
    python -m pip install -q --disable-pip-version-check -e ".[test,docs]" || exit 1
    if [ -n "${TP_DJANGO:-}" ]; then
        python -m pip install -q --disable-pip-version-check "$TP_DJANGO" || exit 1
    fi
fi

python -m ruff check . || exit 1
DJANGO_SETTINGS_MODULE=tests.settings python -m django makemigrations --check --dry-run \
    trusted_publishing index >/dev/null || { echo "error: model changes without a migration" >&2; exit 1; }

python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
