"""pypa/gh-action-pypi-publish, emulated: its OIDC exchange (tests/support/tpclient.py), then the
real `twine upload` exactly as its twine-upload.sh runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.server import IndexServer
from tests.support.tpclient import ExchangeFailed, gh_action_exchange

from .conftest import twine_upload


def test_action_exchange_then_twine_upload(
    server, index, publishers, github_idp, action_env, client_env, dists, workdir: Path, unique
) -> None:
    name = f"gha-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}", environment="release")
    github_idp.job(f"acme/{name}", "release.yml", environment="release")
    files = dists(name, "1.2.3")

    token = gh_action_exchange(server.upload_url, str(server.tls.ca))
    # The action warns unless the token looks like a PyPI token.
    assert token.startswith("pypi-")
    result = twine_upload(server, client_env, token, files)

    assert result.returncode == 0, result.output
    index.assert_published(name, files, env=client_env, target=workdir / "site")
    # A re-run of the job uploads the very same file: accepted and stored once, as on PyPI.
    again = twine_upload(server, client_env, token, files[:1])
    assert again.returncode == 0, again.output
    index.assert_published(name, files, env=client_env, target=workdir / "site-again")


def test_action_shows_the_index_errors(
    server, index, publishers, github_idp, action_env, unique
) -> None:
    name = f"gha-refused-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}", environment="release")
    github_idp.job(f"acme/{name}", "release.yml", environment="dev")
    with pytest.raises(ExchangeFailed) as failure:
        gh_action_exchange(server.upload_url, str(server.tls.ca))
    # A JSON 422 with an errors[] list, which the action turns into its bullet list.
    assert "* `invalid-publisher`:" in str(failure.value)
    index.assert_nothing_uploaded(name)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 422),
        (b"not json", 422),
        (b'["a list"]', 422),
        (b'{"token": 42}', 422),
        (b'{"token": "not.a.jwt"}', 422),
        (b'{"token": "x", "features": ["teleport"]}', 422),
        (json.dumps({"token": "x" * 40_000}).encode(), 413),
    ],
)
def test_every_mint_error_is_json_with_errors(server, body: bytes, status: int) -> None:
    """The action (and twine) index payload["errors"] on any non-2xx: never a bare error."""
    session = requests.Session()
    session.trust_env = False
    response = session.post(
        f"{server.base_url}/_/oidc/mint-token",
        data=body,
        verify=str(server.tls.ca),
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == status
    payload = response.json()
    assert payload["errors"] and all({"code", "description"} <= set(e) for e in payload["errors"])
    assert "token" not in payload


@pytest.fixture(scope="module")
def disabled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """A second index with Trusted Publishing switched off (TRUSTED_PUBLISHING["ENABLED"])."""
    instance = IndexServer(
        tmp_path_factory.mktemp("disabled"),
        with_http=False,
        workers=1,
        extra_env={"TP_ENABLED": "false"},
    )
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def test_action_reports_disabled_trusted_publishing(disabled_server, action_env) -> None:
    with pytest.raises(ExchangeFailed, match="has trusted publishing disabled"):
        gh_action_exchange(disabled_server.upload_url, str(disabled_server.tls.ca))
