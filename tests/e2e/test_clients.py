"""pdm, twine (its own Trusted Publishing code path) and maturin, the real clients."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.environment import SCRUB, github_actions_env

from .conftest import run, tool


def test_pdm_publish_through_trusted_publishing(
    server, agent, index, publishers, github_idp, gha_env, dists, workdir: Path, unique
) -> None:
    name = f"pdm-tp-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}", workflow="publish.yml")
    github_idp.job(f"acme/{name}", "publish.yml")
    files = dists(name, "3.1.0")
    project_dir = workdir / "pdm-project"
    project_dir.mkdir()
    # pdm wants a project in its working directory; publishing uses the prebuilt dist/ only.
    (project_dir / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "3.1.0"\n')

    result = run(
        [
            tool("pdm"),
            "publish",
            "--no-build",
            "--dest",
            str(files[0].path.parent),
            "--repository",
            server.upload_url,
            "--ca-certs",
            str(server.tls.ca),
        ],
        env=gha_env,
        cwd=project_dir,
    )

    assert result.returncode == 0, result.output
    assert github_idp.last_audience == server.audience
    index.assert_published(name, files, env=gha_env, target=workdir / "site")
    [token] = agent("tokens", project=name)
    assert token["upload_count"] == 2


def test_pdm_mint_failure_uploads_nothing(
    server, index, publishers, github_idp, gha_env, dists, workdir: Path, unique
) -> None:
    name = f"pdm-refused-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}", workflow="publish.yml")
    github_idp.job(f"acme/{name}", "other.yml")
    files = dists(name)
    project_dir = workdir / "pdm-project"
    project_dir.mkdir()
    (project_dir / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "1"\n')
    result = run(
        [
            tool("pdm"),
            "publish",
            "--no-build",
            "--dest",
            str(files[0].path.parent),
            "--repository",
            server.upload_url,
            "--ca-certs",
            str(server.tls.ca),
        ],
        env=gha_env,
        cwd=project_dir,
    )
    assert result.returncode != 0, result.output
    # pdm only says it could not get a token, then asks for a password it cannot prompt for.
    assert "Failed to get PyPI token via OIDC" in result.output
    index.assert_nothing_uploaded(name)


@pytest.fixture
def twine_in_process(monkeypatch: pytest.MonkeyPatch, server, github_idp) -> None:
    """Drive twine's own Trusted Publishing path (it only runs for PyPI's URL)."""
    import twine.utils

    for key in list(os.environ):
        if key in SCRUB or key.startswith(("TWINE_", "GITHUB_", "ACTIONS_", "GITLAB_")):
            monkeypatch.delenv(key)
    for key, value in github_actions_env(github_idp.token_url, github_idp.request_token).items():
        monkeypatch.setenv(key, value)
    # twine's token session ignores --cert; only REQUESTS_CA_BUNDLE reaches it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.tls.ca))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    monkeypatch.setattr(twine.utils, "DEFAULT_REPOSITORY", server.upload_url)


def test_twine_native_trusted_publishing(
    server,
    agent,
    index,
    publishers,
    github_idp,
    dists,
    twine_in_process,
    client_env,
    workdir: Path,
    unique,
) -> None:
    from twine.cli import dispatch

    name = f"twine-tp-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    files = dists(name, "4.0.0")

    dispatch(
        [
            "upload",
            "--repository-url",
            server.upload_url,
            "--non-interactive",
            "--disable-progress-bar",
            "--cert",
            str(server.tls.ca),
            *[str(d.path) for d in files],
        ]
    )

    assert github_idp.last_audience == server.audience
    index.assert_published(name, files, env=client_env, target=workdir / "site")
    [token] = agent("tokens", project=name)
    assert token["upload_count"] == 2


def test_twine_native_trusted_publishing_refused(
    server, index, publishers, github_idp, dists, twine_in_process, unique
) -> None:
    from twine.cli import dispatch
    from twine.exceptions import TrustedPublishingFailure

    name = f"twine-refused-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}-fork", "release.yml")
    with pytest.raises(TrustedPublishingFailure, match="invalid-publisher"):
        dispatch(
            [
                "upload",
                "--repository-url",
                server.upload_url,
                "--non-interactive",
                "--disable-progress-bar",
                "--cert",
                str(server.tls.ca),
                *[str(d.path) for d in dists(name)],
            ]
        )
    index.assert_nothing_uploaded(name)


def test_maturin_upload_uses_the_legacy_github_route(
    server, agent, index, publishers, github_idp, gha_env, dists, workdir: Path, unique
) -> None:
    name = f"maturin-tp-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    wheel = dists(name, "5.0.0")[1]
    assert wheel.filename.endswith(".whl")

    # maturin's OIDC requests ignore custom CAs: it talks to the plain-http listener.
    result = run(
        [
            tool("maturin"),
            "upload",
            "--non-interactive",
            "--repository-url",
            f"{server.http_base_url}/legacy/",
            str(wheel.path),
        ],
        env=gha_env,
    )

    assert result.returncode == 0, result.output
    index.assert_published(name, [wheel], env=gha_env, target=workdir / "site")
    minted = agent("audit", kinds=["token.minted"], project=name)
    assert len(minted) == 1
    access = (server.workdir / "access-http.log").read_text()
    assert "POST /_/oidc/github/mint-token" in access
