"""Session fixtures for the end-to-end suite: one real index server (gunicorn, TLS), fake
identity providers registered in its database, and helpers to run the real clients.

DATABASE_URL / CACHE_URL in the environment switch the server to PostgreSQL / Redis (a throwaway
database is created and dropped); otherwise it uses a temporary SQLite file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.dists import Dist, make_dists
from tests.support.environment import clean_env, github_actions_env
from tests.support.idp import FakeIdP
from tests.support.server import Agent, IndexServer

pytestmark = pytest.mark.e2e
CLIENT_TIMEOUT = 120
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A client from the test virtualenv (never skip: CI installs all of them)."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    assert found, f"{name} is not installed (pip install -e .[test])"
    return found


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"$ {' '.join(self.args)}\n[exit {self.returncode}]\n{self.stdout}\n{self.stderr}"


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = CLIENT_TIMEOUT
) -> Result:
    proc = subprocess.run(
        args,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def server(e2e_dir: Path) -> Iterator[IndexServer]:
    instance = IndexServer(e2e_dir / "server")
    try:
        instance.start()
    except BaseException:
        print(instance.log_tail())
        instance.stop()
        raise
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def agent(server: IndexServer) -> Agent:
    assert server.agent is not None
    return server.agent


def _register_issuer(agent: Agent, provider: str, url: str) -> None:
    # The operator's CLI, exactly as documented: a discovery issuer (keys fetched from it).
    agent.manage(
        "trusted_publishing",
        "add-issuer",
        "--provider",
        provider,
        "--url",
        url,
        "--name",
        f"e2e fake {provider}",
    )


@pytest.fixture(scope="session")
def github_idp_session(agent: Agent) -> Iterator[FakeIdP]:
    with FakeIdP(request_token="gh-request-" + uuid.uuid4().hex[:8]) as idp:
        _register_issuer(agent, "github", idp.url)
        yield idp


@pytest.fixture(scope="session")
def gitlab_idp_session(agent: Agent) -> Iterator[FakeIdP]:
    with FakeIdP() as idp:
        _register_issuer(agent, "gitlab", idp.url)
        yield idp


@pytest.fixture
def github_idp(github_idp_session: FakeIdP) -> Iterator[FakeIdP]:
    github_idp_session.reset()
    yield github_idp_session
    github_idp_session.reset()
    if not github_idp_session.running:  # a test stopped it: bring it back for the next
        github_idp_session.start()


@pytest.fixture
def gitlab_idp(gitlab_idp_session: FakeIdP) -> Iterator[FakeIdP]:
    gitlab_idp_session.reset()
    yield gitlab_idp_session
    gitlab_idp_session.reset()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def client_env(workdir: Path) -> dict[str, str]:
    """A scrubbed environment for one client run (no CA/proxy/CI variables from outside)."""
    return clean_env(workdir / "home")


@pytest.fixture
def gha_env(client_env: dict[str, str], github_idp: FakeIdP) -> dict[str, str]:
    """client_env + what a GitHub Actions job with `id-token: write` sees."""
    return {**client_env, **github_actions_env(github_idp.token_url, github_idp.request_token)}


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


class Publishers:
    """Register publishers (CLI) and projects in the server's database."""

    def __init__(self, agent: Agent, github: FakeIdP, gitlab: FakeIdP) -> None:
        self.agent, self.github, self.gitlab = agent, github, gitlab

    def github_publisher(
        self,
        project: str,
        *,
        repository: str = "acme/widgets",
        workflow: str = "release.yml",
        environment: str | None = None,
        pending: bool = False,
        create_project: bool = True,
    ) -> int:
        argv = [
            "trusted_publishing",
            "add-publisher",
            "--json",
            "--provider",
            "github",
            "--issuer",
            self.github.url,
            "--repository",
            repository,
            "--workflow",
            workflow,
            "--project",
            project,
        ]
        if environment:
            argv += ["--environment", environment]
        if pending:
            argv.append("--pending")
        elif create_project:
            self.agent("create_project", name=project)
        out = self.agent.manage(*argv)["json"]
        return int(out["id"])

    def gitlab_publisher(
        self,
        project: str,
        *,
        path: str = "acme/widgets",
        ci_config: str = ".gitlab-ci.yml",
        environment: str | None = None,
    ) -> int:
        self.agent("create_project", name=project)
        argv = [
            "trusted_publishing",
            "add-publisher",
            "--json",
            "--provider",
            "gitlab",
            "--issuer",
            self.gitlab.url,
            "--repository",
            path,
            "--workflow",
            ci_config,
            "--project",
            project,
        ]
        if environment:
            argv += ["--environment", environment]
        return int(self.agent.manage(*argv)["json"]["id"])


@pytest.fixture
def publishers(agent: Agent, github_idp: FakeIdP, gitlab_idp: FakeIdP) -> Publishers:
    return Publishers(agent, github_idp, gitlab_idp)


@pytest.fixture
def dists(workdir: Path) -> Any:
    """dists(name, version) -> [sdist, wheel] (fast synthetic builds, installable)."""

    def build(name: str, version: str = "1.0.0") -> list[Dist]:
        return make_dists(name, version, workdir / "dist" / f"{name}-{version}")

    return build


class Index:
    """Read the server the way an installer does, and check what it serves."""

    def __init__(self, server: IndexServer, agent: Agent) -> None:
        self.server, self.agent = server, agent
        context = server.tls.client_context()
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

    def get(self, path: str, accept: str = "application/vnd.pypi.simple.v1+json") -> Any:
        url = path if path.startswith("http") else self.server.base_url + path
        request = urllib.request.Request(url, headers={"Accept": accept})
        with self._opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()

    def simple(self, project: str) -> dict[str, Any] | None:
        try:
            _, _, body = self.get(f"/simple/{project}/")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(body)

    def filenames(self, project: str) -> set[str]:
        data = self.simple(project)
        return {f["filename"] for f in data["files"]} if data else set()

    def assert_nothing_uploaded(self, project: str) -> None:
        assert self.agent("files", project=project) == []
        assert self.filenames(project) == set()

    def assert_published(
        self,
        project: str,
        dists: list[Dist],
        *,
        via_publisher: bool = True,
        env: dict[str, str],
        target: Path,
    ) -> None:
        """The index serves exactly these bytes, and pip installs the package from it."""
        data = self.simple(project)
        assert data is not None, f"{project} is not on the index"
        served = {f["filename"]: f for f in data["files"]}
        for dist in dists:
            assert dist.filename in served, f"{dist.filename} missing from {sorted(served)}"
            entry = served[dist.filename]
            assert entry["hashes"]["sha256"] == dist.sha256
            _, _, body = self.get(entry["url"], accept="*/*")
            assert hashlib.sha256(body).hexdigest() == dist.sha256
        rows = {row["filename"]: row for row in self.agent("files", project=project)}
        for dist in dists:
            assert rows[dist.filename]["uploaded_via_trusted_publisher"] is via_publisher
        version = data["versions"][-1]
        self.pip_install(project, version, env=env, target=target)

    def pip_install(self, project: str, version: str, *, env: dict[str, str], target: Path) -> None:
        pip_env = {**env, "PIP_CERT": str(self.server.tls.ca), "PIP_CONFIG_FILE": os.devnull}
        result = run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--no-deps",
                "--cert",
                str(self.server.tls.ca),
                "--index-url",
                pip_url(self.server.simple_url),
                "--target",
                str(target),
                f"{project}=={version}",
            ],
            env=pip_env,
        )
        assert result.returncode == 0, result.output
        module = project.replace("-", "_").replace(".", "_").lower()
        init = target / module / "__init__.py"
        assert init.exists(), result.output
        assert f'__version__ = "{version}"' in init.read_text()


def pip_url(url: str) -> str:
    """pip >= 24.2 (truststore) cannot verify an https URL whose host is an IP address
    ("check_hostname requires server_hostname"); the test certificate also names localhost."""
    return url.replace("://127.0.0.1:", "://localhost:", 1)


@pytest.fixture
def index(server: IndexServer, agent: Agent) -> Index:
    return Index(server, agent)


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request: pytest.FixtureRequest, server: IndexServer) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(server.log_tail(40))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def action_env(monkeypatch: pytest.MonkeyPatch, github_idp) -> None:
    """The job environment `id.detect_credential` reads (in this process)."""
    for key in ("GITLAB_CI", "BUILDKITE", "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", github_idp.token_url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", github_idp.request_token)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def twine_upload(server, env, token: str, files, *extra: str):  # type: ignore[no-untyped-def]
    return run(
        [tool("twine"), "upload", "--disable-progress-bar", *extra, *[str(d.path) for d in files]],
        env={
            **env,
            "TWINE_USERNAME": "__token__",
            "TWINE_PASSWORD": token,
            "TWINE_REPOSITORY_URL": server.upload_url,
            "TWINE_CERT": str(server.tls.ca),
            "TWINE_NON_INTERACTIVE": "1",
        },
    )


def client_versions() -> list[str]:
    """The client versions this run tests (docs/clients.md names the ones verified)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("uv", "twine", "pdm", "hatch", "poetry", "flit", "maturin", "id"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (missing)")
    return found


def pytest_report_header(config: pytest.Config) -> str:
    return "e2e clients: " + ", ".join(client_versions())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Also under -q, which hides the header.
    terminalreporter.write_line("e2e clients tested: " + ", ".join(client_versions()))
