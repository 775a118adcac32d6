"""A real multi-process index for race tests: the example index under gunicorn (4 workers × 4
threads) on its own PostgreSQL database, from the e2e support code (tests/support/server.py).

Identity tokens come from a static-JWKS TestIssuer registered in the server's database, so the
races are about the database and the cache, not about key fetching.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.plugins.secrets_guard import register_log_dir
from tests.support.dists import sdist_bytes
from tests.support.server import Agent, IndexServer
from trusted_publishing.testing import TestIssuer

AUDIENCE = "concurrency.example.internal"
ISSUER_URL = "https://token.actions.concurrency.test"


class RaceIndex:
    def __init__(self, server: IndexServer, issuer: TestIssuer) -> None:
        self.server = server
        self.issuer = issuer
        assert server.agent is not None
        self.agent: Agent = server.agent
        self.url = server.http_base_url

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxies or CA variables from the machine
        return session

    def publisher(self, *, pending: bool = False, issuer_url: str = ISSUER_URL) -> tuple[str, str]:
        """A fresh repository + project with a publisher (and the project, unless pending)."""
        name = "race-" + uuid.uuid4().hex[:8]
        repository = f"acme/{name}"
        if not pending:
            self.agent("create_project", name=name)
        self.agent(
            "execute",
            code=(
                "from datetime import timedelta\n"
                "from django.utils import timezone\n"
                "from trusted_publishing.models import GitHubPublisher, TrustedIssuer\n"
                f"issuer = TrustedIssuer.objects.get(url={issuer_url!r})\n"
                "p = GitHubPublisher.objects.create(issuer=issuer, repository_owner='acme', "
                f"repository_name={name!r}, workflow_filename='release.yml', "
                f"pending_expires_at=timezone.now() + timedelta(days=1) if {pending!r} else None)\n"
                f"p.add_projects([{name!r}])\n"
                "result = p.pk\n"
            ),
        )
        return repository, name

    def upload(
        self, session: requests.Session, token: str, project: str, version: str
    ) -> requests.Response:
        """One sdist upload (random content, so only the token can stop it)."""
        # A real sdist (the index reads PKG-INFO), random inside so every file is new.
        content = sdist_bytes(project, version, payload=os.urandom(256))
        return session.post(
            self.url + "/legacy/",
            auth=("__token__", token),
            data={
                ":action": "file_upload",
                "protocol_version": "1",
                "name": project,
                "version": version,
                "filetype": "sdist",
                "sha256_digest": hashlib.sha256(content).hexdigest(),
            },
            files={"content": (f"{project.replace('-', '_')}-{version}.tar.gz", content)},
            timeout=60,
        )

    def jwt(self, repository: str) -> str:
        return self.issuer.sign(self.issuer.github_claims(repository, aud=AUDIENCE))

    def count(self, expression: str) -> Any:
        return self.agent(
            "execute",
            code=(
                "from trusted_publishing.models import AuditEvent, IssuedToken, "
                "UsedIdentityToken\n"
                "from example_project.index.models import File, Project\n"
                f"result = {expression}\n"
            ),
        )


def register_issuer(agent: Agent, url: str) -> TestIssuer:
    """A static-JWKS GitHub issuer in the server's database; returns its signer."""
    issuer = TestIssuer(url)
    agent(
        "execute",
        code=(
            "from trusted_publishing.models import TrustedIssuer\n"
            f"TrustedIssuer.objects.create(url={url!r}, provider='github', "
            "name='race issuer', key_source='static', "
            f"static_jwks={json.loads(json.dumps(issuer.jwks()))!r})\n"
            "result = True\n"
        ),
    )
    return issuer


@pytest.fixture(scope="module")
def race_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaceIndex]:
    workdir: Path = tmp_path_factory.mktemp("races")
    with pytest.MonkeyPatch.context() as env:
        # The throwaway database is created through a maintenance connection; DATABASE_URL's
        # own database need not exist (pytest-django only creates test_<name>).
        outer = os.environ.get("DATABASE_URL", "")
        if outer.startswith(("postgres://", "postgresql://", "pgsql://")):
            env.setenv("DATABASE_URL", outer.rpartition("/")[0] + "/postgres")
        server = IndexServer(workdir / "server", audience=AUDIENCE, workers=4, threads=4)
    register_log_dir(server.workdir)  # the secrets guard scans its logs at session end
    try:
        server.start()
        assert server.agent is not None
        issuer = register_issuer(server.agent, ISSUER_URL)
    except BaseException:
        print(server.log_tail())
        server.stop()
        raise
    yield RaceIndex(server, issuer)
    server.stop()
