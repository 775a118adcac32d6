"""PEP 807 discovery from the upload URL, token features, revocation, and user credentials."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.tpclient import PYTP_MEDIA_TYPE, pep807_discover, pep807_mint

from .conftest import run, tool, twine_upload


def test_discovery_follows_the_pep(server) -> None:
    response = pep807_discover(server.upload_url, str(server.tls.ca))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith((PYTP_MEDIA_TYPE, "application/json"))
    document = response.json()
    assert document["audience-endpoint"] == f"{server.base_url}/_/oidc/audience"
    assert document["token-mint-endpoint"] == f"{server.base_url}/_/oidc/mint-token"
    assert set(document["features"]) == {"single-use-token", "multi-use-token"}
    # No Accept header: as if the PEP's media type had been sent.
    assert pep807_discover(server.upload_url, str(server.tls.ca), accept=None).status_code == 200
    # Not an upload path of this index, or an Accept it cannot satisfy.
    assert pep807_discover(f"{server.base_url}/simple/", str(server.tls.ca)).status_code == 404
    assert (
        pep807_discover(server.upload_url, str(server.tls.ca), accept="text/html").status_code
        == 406
    )


def test_discovered_mint_and_twine_upload(
    server,
    agent,
    index,
    publishers,
    github_idp,
    action_env,
    client_env,
    dists,
    workdir: Path,
    unique,
) -> None:
    name = f"pep807-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    files = dists(name, "7.0.0")

    before = int(time.time())
    minted = pep807_mint(server.upload_url, str(server.tls.ca))
    # PEP 807: valid for at least 15 minutes and at most 6 hours (whole seconds).
    assert before + 900 - 1 <= minted["expires"] <= int(time.time()) + 21600
    result = twine_upload(server, client_env, minted["token"], files)

    assert result.returncode == 0, result.output
    index.assert_published(name, files, env=client_env, target=workdir / "site")


def test_single_use_token_is_refused_the_second_time(
    server, agent, index, publishers, github_idp, action_env, client_env, dists, unique
) -> None:
    name = f"single-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    sdist, wheel = dists(name, "1.0.0")
    token = pep807_mint(server.upload_url, str(server.tls.ca), features=["single-use-token"])[
        "token"
    ]

    first = twine_upload(server, client_env, token, [sdist])
    second = twine_upload(server, client_env, token, [wheel])

    assert first.returncode == 0, first.output
    assert second.returncode != 0, second.output
    assert {row["filename"] for row in agent("files", project=name)} == {sdist.filename}
    assert index.filenames(name) == {sdist.filename}
    [record] = agent("tokens", project=name)
    assert record["single_use"] and record["state"] == "used"


def test_revoked_token_uploads_nothing(
    server, agent, index, publishers, github_idp, action_env, client_env, dists, unique
) -> None:
    name = f"revoked-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    token = pep807_mint(server.upload_url, str(server.tls.ca))["token"]
    [record] = agent("tokens", project=name)
    # The operator's CLI, as in the runbook.
    agent.manage("trusted_publishing", "revoke-token", str(record["id"]))
    assert agent("tokens", project=name)[0]["state"] == "revoked"

    result = twine_upload(server, client_env, token, dists(name))

    assert result.returncode != 0, result.output
    index.assert_nothing_uploaded(name)


def test_mint_for_a_subset_of_projects(
    server, agent, index, publishers, github_idp, action_env, client_env, dists, unique
) -> None:
    first, second = f"subset-a-{unique}", f"subset-b-{unique}"
    publishers.github_publisher(first, repository=f"acme/{first}")
    publishers.github_publisher(second, repository=f"acme/{first}")
    github_idp.job(f"acme/{first}", "release.yml")
    token = pep807_mint(server.upload_url, str(server.tls.ca), packages=[first])["token"]
    refused = twine_upload(server, client_env, token, dists(second))
    assert refused.returncode != 0, refused.output
    index.assert_nothing_uploaded(second)
    assert twine_upload(server, client_env, token, dists(first)).returncode == 0


@pytest.fixture(scope="module")
def staff_user(agent) -> tuple[str, str]:
    agent("create_user", username="release-manager", password="correct horse", staff=True)
    return "release-manager", "correct horse"


def test_user_credentials_and_duplicate_handling_with_uv(
    server, index, staff_user, client_env, dists, workdir: Path, unique
) -> None:
    name = f"by-hand-{unique}"
    files = dists(name, "0.9.0")
    env = {**client_env, "SSL_CERT_FILE": str(server.tls.ca)}
    username, password = staff_user

    def publish(*extra: str):  # type: ignore[no-untyped-def]
        return run(
            [
                tool("uv"),
                "publish",
                "--publish-url",
                server.upload_url,
                "--username",
                username,
                "--password",
                password,
                *extra,
                *[str(d.path) for d in files],
            ],
            env=env,
        )

    assert (ok := publish()).returncode == 0, ok.output
    index.assert_published(
        name, files, via_publisher=False, env=client_env, target=workdir / "site"
    )
    # The very same files again: accepted and stored once, as on PyPI.
    duplicate = publish()
    assert duplicate.returncode == 0, duplicate.output
    # --check-url: uv asks the simple index, sees identical files, and skips them.
    skipped = publish("--check-url", server.simple_url)
    assert skipped.returncode == 0, skipped.output
    wrong = run(
        [
            tool("uv"),
            "publish",
            "--publish-url",
            server.upload_url,
            "--username",
            username,
            "--password",
            "wrong",
            *[str(d.path) for d in dists(f"{name}-x")],
        ],
        env=env,
    )
    assert wrong.returncode != 0
