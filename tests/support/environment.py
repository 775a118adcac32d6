"""Clean environments for the real clients (see shared reference test-environment.md).

This machine (and CI) sets CA-bundle and pip variables for its package mirror; requests lets
REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE win over everything, so every client run starts from an
environment with all of those removed, then adds exactly what the test means.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: removed from every client environment
SCRUB_PREFIXES = (
    "UV_",
    "TWINE_",
    "PDM_",
    "MATURIN_",
    "PIP_",
    "GITHUB_",
    "ACTIONS_",
    "GITLAB_",
    "INPUT_",
    "HATCH_",
    "FLIT_",
    "POETRY_",
)
SCRUB = {
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "BUILDKITE",
    "CIRCLECI",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
    "CI_JOB_JWT",
    "ID_OIDC_AUDIENCE",
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "CACHE_URL",
    "VIRTUAL_ENV_PROMPT",
}


def clean_env(
    home: str | os.PathLike[str],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SCRUB and not key.startswith(SCRUB_PREFIXES)
    }
    # No identity-token audience variables from an outer CI (…_ID_TOKEN, GitLab style).
    env = {key: value for key, value in env.items() if not key.endswith("_ID_TOKEN")}
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(os.path.join(home, "uv-cache")),
            "PDM_HOME": str(os.path.join(home, "pdm-home")),
            "PDM_CHECK_UPDATE": "false",
            "PDM_IGNORE_SAVED_PYTHON": "1",
            "XDG_CONFIG_HOME": str(os.path.join(home, "config")),
            "XDG_CACHE_HOME": str(os.path.join(home, "cache")),
            "TWINE_NON_INTERACTIVE": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def github_actions_env(token_url: str, request_token: str) -> dict[str, str]:
    """What a GitHub Actions job with `permissions: id-token: write` sees."""
    return {
        "GITHUB_ACTIONS": "true",  # uv wants exactly "true"
        "ACTIONS_ID_TOKEN_REQUEST_URL": token_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": request_token,
    }


def gitlab_variable(audience: str) -> str:
    """The variable GitLab's `id_tokens:` puts the JWT in, as id and uv derive it."""
    name = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in audience.upper())
    return f"{name}_ID_TOKEN"
