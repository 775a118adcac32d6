"""The release jobs of docs/clients.md ("Release jobs for every client"), run as written.

Each job's publish step is read from the page (GitHub Actions and GitLab CI/CD run the same
script) and run with bash in a GitHub-Actions-shaped environment against the real index, followed
by ``pip install`` from it. The only changes: the host (``https://pkgs.example.internal`` → the
test server) and the private CA, given through each client's own variable in a temp HOME.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.dists import Dist, make_dists, make_wheel
from tests.support.server import REPO_ROOT

from .conftest import VENV_BIN, Result, run

pytestmark = pytest.mark.e2e

DOC = REPO_ROOT / "docs" / "clients.md"
DOC_HOST = "https://pkgs.example.internal"
TOKEN_CLIENTS = ("twine", "hatch", "poetry", "flit")
NATIVE_CLIENTS = ("uv", "pdm")
MINT_END = "rm mint.json\n"
_BLOCK = re.compile(
    r"<!-- e2e-job: (\w+) (github|gitlab) -->\n    ```yaml[^\n]*\n(.*?)\n    ```", re.S
)


def doc_jobs() -> dict[tuple[str, str], dict]:
    jobs = {}
    for match in _BLOCK.finditer(DOC.read_text()):
        body = "\n".join(line[4:] for line in match.group(3).splitlines())
        jobs[(match.group(1), match.group(2))] = yaml.safe_load(body)
    return jobs


def publish_script(client: str, ci: str = "github") -> str:
    job = doc_jobs()[(client, ci)]
    if ci == "github":
        [step] = [s for s in job["jobs"]["publish"]["steps"] if s.get("name") == "Publish"]
        return step["run"].rstrip("\n") + "\n"
    return job["publish"]["script"][-1].rstrip("\n") + "\n"


def mint_part(client: str) -> str:
    script = publish_script(client)
    return script[: script.index(MINT_END) + len(MINT_END)]


def upload_part(client: str) -> str:
    """The job's upload, with INDEX set and the token from $PUBLISH_TOKEN (the exchange done)."""
    script = publish_script(client)
    return script.splitlines(keepends=True)[0] + script[script.index(MINT_END) + len(MINT_END) :]


def test_the_doc_has_one_job_per_client_and_ci() -> None:
    jobs = doc_jobs()
    clients = TOKEN_CLIENTS + NATIVE_CLIENTS
    assert set(jobs) == {(c, ci) for c in clients for ci in ("github", "gitlab")}
    for client in TOKEN_CLIENTS + NATIVE_CLIENTS:
        assert publish_script(client, "github") == publish_script(client, "gitlab"), client
        gh = jobs[(client, "github")]["jobs"]["publish"]
        assert gh["permissions"]["id-token"] == "write"
        assert "PKGS_EXAMPLE_INTERNAL_ID_TOKEN" in jobs[(client, "gitlab")]["publish"]["id_tokens"]
    # One recipe for the exchange, the same in every token-based job.
    assert len({mint_part(c) for c in TOKEN_CLIENTS}) == 1


def job_env(server, env: dict[str, str]) -> dict[str, str]:
    """The private CA, through each client's own setting (the doc names them)."""
    ca = str(server.tls.ca)
    return {
        **env,
        "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}",
        "CURL_CA_BUNDLE": ca,  # curl (the exchange)
        "TWINE_CERT": ca,
        "HATCH_INDEX_CA_CERT": ca,
        "POETRY_CERTIFICATES_INTERNAL_CERT": ca,
        "REQUESTS_CA_BUNDLE": ca,  # flit has no CA option of its own
        "SSL_CERT_FILE": ca,  # uv
        "PDM_PUBLISH_CA_CERTS": ca,
        "POETRY_VIRTUALENVS_CREATE": "false",
        "POETRY_CACHE_DIR": str(Path(env["HOME"]) / "poetry-cache"),
        "HATCH_DATA_DIR": str(Path(env["HOME"]) / "hatch-data"),
        "HATCH_CACHE_DIR": str(Path(env["HOME"]) / "hatch-cache"),
    }


def run_script(server, script: str, env: dict[str, str], cwd: Path) -> Result:
    script = script.replace(DOC_HOST, server.base_url)
    # What GitHub Actions runs a `run:` step with.
    return run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], env, cwd=cwd)


def run_job(server, client: str, env: dict[str, str], cwd: Path) -> Result:
    return run_script(server, publish_script(client), job_env(server, env), cwd)


def home_of(env: dict[str, str]) -> dict[str, str]:
    home = Path(env["XDG_CONFIG_HOME"]).parent
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home)}


def make_repo(client: str, name: str, version: str, root: Path, *, wheels: int = 1) -> list[Dist]:
    """A checkout after the job's build step: pyproject.toml and dist/ (flit builds itself)."""
    module = name.replace("-", "_").lower()
    root.mkdir(parents=True, exist_ok=True)
    if client == "flit":
        (root / module).mkdir()
        (root / module / "__init__.py").write_text(
            f'"""Published by flit."""\n\n__version__ = "{version}"\n'
        )
        (root / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["flit_core>=3.4"]\nbuild-backend = "flit_core.buildapi"\n'
            f'\n[project]\nname = "{name}"\nversion = "{version}"\n'
            'description = "e2e flit package"\n'
        )
        return []
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\ndescription = "e2e"\n'
        'requires-python = ">=3.9"\n'
    )
    files = make_dists(name, version, root / "dist")
    for tag in ("py311-none-any", "py312-none-any", "py313-none-any")[: wheels - 1]:
        files.append(make_wheel(name, version, root / "dist", tag=tag))
    return files


def flit_dists(root: Path) -> list[Dist]:
    return [Dist(p) for p in sorted((root / "dist").iterdir())]


def mint_with_recipe(server, client_env, github_idp, name: str, cwd: Path) -> str:
    github_idp.job(f"acme/{name}", "release.yml")
    script = mint_part("twine") + 'printf "%s" "$PUBLISH_TOKEN" > token.txt\n'
    result = run_script(server, script, job_env(server, client_env), cwd)
    assert result.returncode == 0, result.output
    return (cwd / "token.txt").read_text()


def burn(server, token: str) -> None:
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    request = urllib.request.Request(
        f"{server.base_url}/_/oidc/burn-token",
        data=json.dumps({"token": token}).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(request, timeout=30) as response:
        assert response.status == 202


def expire(agent, project: str) -> None:
    agent(
        "execute",
        code=(
            "from datetime import timedelta\nfrom django.utils import timezone\n"
            "from trusted_publishing.models import IssuedToken\n"
            f"ids = [t.pk for t in IssuedToken.objects.all() if {project!r} in t.projects]\n"
            "IssuedToken.objects.filter(pk__in=ids)"
            ".update(expires_at=timezone.now() - timedelta(hours=1))\n"
            "result = True\n"
        ),
    )


# --- 1. every client publishes, end to end ------------------------------------------------------


@pytest.mark.parametrize("client", TOKEN_CLIENTS + NATIVE_CLIENTS)
def test_release_job_publishes_and_pip_installs(
    client, server, agent, index, publishers, github_idp, gha_env, workdir: Path, unique
) -> None:
    name = f"job-{client}-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    repo = workdir / "repo"
    files = make_repo(client, name, "1.0.0", repo, wheels=3 if client == "twine" else 1)
    env = home_of(gha_env)

    result = run_job(server, client, env, repo)

    assert result.returncode == 0, result.output
    log = "\n".join(
        line for line in result.output.splitlines() if "::add-mask::" not in line
    )  # uv and pdm mask their token for GitHub
    assert "pypi-" not in log, "the token leaked into the job log"
    if client == "flit":
        files = flit_dists(repo)
    assert len(files) == (4 if client == "twine" else 2)
    index.assert_published(name, files, env=env, target=workdir / "site")

    # 2. Re-running the job (with a fresh token: the first was burned or spent) skips what is on
    # the index: uv, pdm, poetry and hatch ask or skip themselves; twine >= 7 refuses
    # --skip-existing for any index but PyPI's and flit has no such option, so for them the
    # index does what PyPI does: the very same file again is accepted and stored once.
    again = run_job(server, client, env, repo)
    assert again.returncode == 0, again.output
    assert {r["filename"] for r in agent("files", project=name)} == {f.filename for f in files}


@pytest.mark.parametrize("client", ["twine", "uv"])
def test_gitlab_job_publishes(
    client, server, index, publishers, gitlab_idp, client_env, workdir: Path, unique
) -> None:
    from tests.support.environment import gitlab_variable

    name = f"job-gl-{client}-{unique}"
    publishers.gitlab_publisher(name, path=f"acme/{name}", ci_config=".gitlab-ci.yml")
    issuer = gitlab_idp.issuer
    jwt = issuer.sign(issuer.gitlab_claims(f"acme/{name}", ".gitlab-ci.yml", aud=server.audience))
    repo = workdir / "repo"
    files = make_repo(client, name, "1.0.0", repo)
    env = {**home_of(client_env), "GITLAB_CI": "true", gitlab_variable(server.audience): jwt}

    result = run_script(server, publish_script(client, "gitlab"), job_env(server, env), repo)

    assert result.returncode == 0, result.output
    index.assert_published(name, files, env=env, target=workdir / "site")


# --- 2. a changed file under a published name is refused with PyPI's message ---------------------


def test_changed_file_under_an_existing_name_is_refused(
    server, agent, index, publishers, github_idp, gha_env, workdir: Path, unique
) -> None:
    name = f"job-reuse-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    repo = workdir / "repo"
    files = make_repo("twine", name, "1.0.0", repo)
    env = home_of(gha_env)
    assert run_job(server, "twine", env, repo).returncode == 0
    stored = {r["filename"]: r["sha256"] for r in agent("files", project=name)}
    wheel = make_wheel(name, "1.0.0", repo / "dist", payload="CHANGED = True\n")
    assert wheel.sha256 != stored[wheel.filename]

    for client in ("twine", "uv"):
        result = run_job(server, client, env, repo)
        assert result.returncode != 0, result.output
        if client == "twine":
            assert (
                f"HTTPError: 400 Bad Request from {server.upload_url} File already exists "
                f"('{wheel.filename}'). See https://pypi.org/help/#file-name-reuse for more "
                "information." in " ".join(result.output.split())
            ), result.output
        else:  # uv --check-url compares hashes before uploading
            assert f"Local file and index file do not match for `{wheel.filename}`" in " ".join(
                result.output.split()
            ), result.output
    assert {r["filename"]: r["sha256"] for r in agent("files", project=name)} == stored
    assert len(files) == 2


# --- 3. clear failures -------------------------------------------------------------------------

CASES = ("expired", "revoked", "other-project", "no-publisher")


def direct_upload(server, client: str, token: str, files: list[Dist], env, cwd: Path) -> Result:
    """uv and pdm given a token (their upload path when Trusted Publishing is not used)."""
    paths = [str(f.path) for f in files]
    if client == "uv":
        args = ["uv", "publish", "--publish-url", server.upload_url, "--token", token, *paths]
    else:
        args = [
            "pdm",
            "publish",
            "--no-build",
            "--repository",
            server.upload_url,
            "--username",
            "__token__",
            "--password",
            token,
        ]
    return run([str(VENV_BIN / args[0]), *args[1:]], job_env(server, env), cwd=cwd)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("client", TOKEN_CLIENTS + NATIVE_CLIENTS)
def test_release_job_fails_with_the_index_reason(
    client, case, server, agent, index, publishers, github_idp, gha_env, workdir: Path, unique
) -> None:
    name = f"fail-{client}-{case}-{unique}"
    env = home_of(gha_env)
    repo = workdir / "repo"
    if case == "no-publisher":
        agent("create_project", name=name)
        github_idp.job(f"acme/{name}", "release.yml")
        make_repo(client, name, "1.0.0", repo)
        result = run_job(server, client, env, repo)
    else:
        minted_for = f"{name}-mine" if case == "other-project" else name
        publishers.github_publisher(minted_for, repository=f"acme/{minted_for}")
        if case == "other-project":
            agent("create_project", name=name)
        token_dir = workdir / "mint"
        token_dir.mkdir()
        token = mint_with_recipe(server, env, github_idp, minted_for, token_dir)
        if case == "expired":
            expire(agent, minted_for)
        elif case == "revoked":
            burn(server, token)
        files = make_repo(client, name, "1.0.0", repo)
        if client in NATIVE_CLIENTS:
            result = direct_upload(server, client, token, files, env, repo)
        else:
            result = run_script(
                server, upload_part(client), {**job_env(server, env), "PUBLISH_TOKEN": token}, repo
            )
    print(result.output)
    assert result.returncode != 0, result.output
    flat = " ".join(result.output.split())
    for text in expected(client, case, name, server.upload_url):
        assert text in flat, f"{text!r} not in:\n{result.output}"
    assert "pypi-" not in "\n".join(
        line for line in (result.stdout + result.stderr).splitlines() if "::add-mask::" not in line
    )
    index.assert_nothing_uploaded(name)


DENIED = {
    "expired": (
        401,
        "Unauthorized",
        "Invalid or expired upload token: mint a new one through Trusted Publishing.",
    ),
    "other-project": (403, "Forbidden", "the token may not upload to project '{name}'"),
}
DENIED["revoked"] = DENIED["expired"]  # the index does not tell expired and revoked apart
NO_PUBLISHER = "valid token, but no trusted publisher is registered for 'acme/{name}' with issuer"
# What each client prints (whitespace collapsed; {url} the upload URL, {name} the project).
FORMATS = {
    "twine": "HTTPError: {status} {phrase} from {url} {reason}",
    "hatch": "Error uploading to repository: {url} - Client error '{status} {reason}' for url",
    "poetry": "HTTP Error {status}: {reason} | b",
    "flit": "requests.exceptions.HTTPError: {status} Client Error: {reason} for url: {url}",
    "uv": "Server returned status code {status} {phrase}. Server says: {reason}",
    "pdm": "[PublishError]: Client error '{status} {reason}' for url '{url}'",
}
MINT_FAILED = (  # the documented recipe: curl prints the problem document, then its error
    '"errors": [{{"code": "invalid-publisher", "description": "' + NO_PUBLISHER,
    "curl: (22) The requested URL returned error: 422",
)


def expected(client: str, case: str, name: str, url: str) -> tuple[str, ...]:
    if case == "no-publisher":
        if client == "uv":
            return (
                "error: Failed to obtain token for trusted publishing",
                "Server returned error code 422 Unprocessable Entity, is trusted publishing "
                "correctly configured?",
                '"detail": "' + NO_PUBLISHER.format(name=name),
            )
        if client == "pdm":  # pdm drops the index's reason
            return (
                "Failed to get PyPI token via OIDC [PdmUsageError]: Username and password are "
                "required",
            )
        return tuple(text.format(name=name) for text in MINT_FAILED)
    status, phrase, reason = DENIED[case]
    return (
        FORMATS[client].format(
            status=status, phrase=phrase, url=url, reason=reason.format(name=name)
        ),
    )


# --- 2. a large wheel ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_100_mb_wheel_uploads_within_the_token_lifetime(
    server, agent, index, publishers, github_idp, gha_env, workdir: Path, unique
) -> None:
    import time

    name = f"job-large-{unique}"
    publishers.github_publisher(name, repository=f"acme/{name}")
    github_idp.job(f"acme/{name}", "release.yml")
    repo = workdir / "repo"
    make_repo("twine", name, "1.0.0", repo)
    for old in (repo / "dist").glob("*.whl"):
        old.unlink()
    # Incompressible (random) bytes, stored: the wheel is ~100 MB on the wire.
    wheel = make_wheel(name, "1.0.0", repo / "dist", extra=os.urandom(100_000_000))
    assert wheel.path.stat().st_size > 100_000_000
    env = home_of(gha_env)

    started = time.monotonic()
    result = run_job(server, "twine", env, repo)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.output
    [token] = agent("tokens", project=name)
    assert token["upload_count"] == 2
    rows = {r["filename"]: r for r in agent("files", project=name)}
    assert rows[wheel.filename]["sha256"] == wheel.sha256
    assert rows[wheel.filename]["size"] == wheel.path.stat().st_size
    assert elapsed < 900, f"{elapsed:.0f} s: longer than the shortest token lifetime"
    print(f"100 MB wheel: minted and uploaded in {elapsed:.1f} s")
