"""`uv publish --trusted-publishing always`, the real binary, as a GitHub Actions and a GitLab CI
job, against the example index over TLS."""

from __future__ import annotations

from pathlib import Path

from tests.support.dists import build_project, write_project
from tests.support.environment import gitlab_variable

from .conftest import run, tool


def uv_publish(server, env, files, *extra: str):  # type: ignore[no-untyped-def]
    return run(
        [
            tool("uv"),
            "publish",
            "--trusted-publishing",
            "always",
            "--publish-url",
            server.upload_url,
            *extra,
            *map(str, files),
        ],
        env={**env, "SSL_CERT_FILE": str(server.tls.ca)},
    )


def test_uv_github_actions_publishes_a_real_build(
    server, agent, index, publishers, github_idp, gha_env, workdir: Path, unique
) -> None:
    name = f"uv-gh-{unique}"
    publishers.github_publisher(
        name, repository=f"acme/{name}", workflow="release.yml", environment="pypi"
    )
    github_idp.job(f"acme/{name}", "release.yml", environment="pypi")
    dists = build_project(write_project(name, "1.0.0", workdir / "src"), workdir / "dist")
    assert len(dists) == 2

    result = uv_publish(server, gha_env, [d.path for d in dists])

    assert result.returncode == 0, result.output
    assert github_idp.last_audience == server.audience
    index.assert_published(name, dists, env=gha_env, target=workdir / "site")
    # uv burns its token after the upload: the index revoked it.
    [token] = agent("tokens", project=name.lower())
    assert token["state"] == "revoked", token
    assert token["upload_count"] == 2
    kinds = [e["kind"] for e in agent("audit", project=name.lower())]
    assert kinds.count("upload.authorised") == 2
    assert "token.burned" in kinds


def test_uv_gitlab_ci_publishes(
    server, agent, index, publishers, gitlab_idp, client_env, dists, workdir: Path, unique
) -> None:
    name = f"uv-gl-{unique}"
    publishers.gitlab_publisher(name, path=f"acme/{name}", ci_config=".gitlab-ci.yml")
    issuer = gitlab_idp.issuer
    jwt = issuer.sign(issuer.gitlab_claims(f"acme/{name}", ".gitlab-ci.yml", aud=server.audience))
    files = dists(name, "2.0.0")
    env = {**client_env, "GITLAB_CI": "true", gitlab_variable(server.audience): jwt}

    result = uv_publish(server, env, [d.path for d in files])

    assert result.returncode == 0, result.output
    index.assert_published(name, files, env=client_env, target=workdir / "site")
    [token] = agent("tokens", project=name)
    assert token["state"] == "revoked"


def _assert_refused(result, index, name: str, *phrases: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0, result.output
    for phrase in phrases:
        assert phrase in result.output, result.output
    index.assert_nothing_uploaded(name)


def test_uv_wrong_repository_is_refused(
    server, index, publishers, github_idp, gha_env, dists, unique
) -> None:
    name = f"uv-wrong-repo-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"mallory/{name}", "release.yml")
    result = uv_publish(server, gha_env, [d.path for d in dists(name)])
    _assert_refused(result, index, name, "invalid-publisher")


def test_uv_wrong_workflow_is_refused(
    server, index, publishers, github_idp, gha_env, dists, unique
) -> None:
    name = f"uv-wrong-wf-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}", workflow="release.yml")
    github_idp.job(f"acme/{name}", "ci.yml")
    result = uv_publish(server, gha_env, [d.path for d in dists(name)])
    _assert_refused(result, index, name, "invalid-publisher")


def test_uv_wrong_environment_is_refused(
    server, index, publishers, github_idp, gha_env, dists, unique
) -> None:
    name = f"uv-wrong-env-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}", environment="pypi")
    github_idp.job(f"acme/{name}", "release.yml", environment="staging")
    result = uv_publish(server, gha_env, [d.path for d in dists(name)])
    _assert_refused(result, index, name, "invalid-publisher")


def test_uv_project_not_authorised_is_refused(
    server, agent, index, publishers, github_idp, gha_env, dists, unique
) -> None:
    mine, theirs = f"uv-mine-{unique}", f"uv-theirs-{unique}"
    publishers.github_publisher(mine, repository=f"acme/{mine}")
    agent("create_project", name=theirs)
    github_idp.job(f"acme/{mine}", "release.yml")
    result = uv_publish(server, gha_env, [d.path for d in dists(theirs)])
    _assert_refused(result, index, theirs, "403")
    denied = agent("audit", kinds=["upload.denied"], project=theirs)
    assert denied, "the refused upload is in the audit log"


def test_uv_publisher_cannot_create_a_missing_project(
    server, agent, index, publishers, github_idp, gha_env, dists, unique
) -> None:
    # An ordinary publisher is only accepted for an existing project; the project is then
    # deleted on the index: the exchange refuses, and uv says why.
    name = f"uv-no-project-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    agent(
        "execute",
        code=(
            "from example_project.index.models import Project\n"
            f"Project.objects.filter(normalized_name={name!r}).delete()\n"
            "result = True\n"
        ),
    )
    github_idp.job(f"acme/{name}", "release.yml")
    result = uv_publish(server, gha_env, [d.path for d in dists(name)])
    _assert_refused(result, index, name, "no longer exist on this index")
    assert agent("project_exists", name=name) is False


def test_uv_pending_publisher_creates_the_project(
    server, agent, index, publishers, github_idp, gha_env, dists, workdir: Path, unique
) -> None:
    name = f"uv-pending-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}", pending=True)
    assert agent("project_exists", name=name) is False
    github_idp.job(f"acme/{name}", "release.yml")
    files = dists(name, "0.1.0")
    result = uv_publish(server, gha_env, [d.path for d in files])
    assert result.returncode == 0, result.output
    assert agent("project_exists", name=name) is True
    index.assert_published(name, files, env=gha_env, target=workdir / "site")
