"""Key rotation and unknown-kid floods over HTTP, against gunicorn (4 workers x 4 threads).

Finding 9: after a fetch, a token signed with a newly published key used to be refused for up to
JWKS_REFRESH_COOLDOWN (60 s, the example index's default). Now:

* a key the issuer publishes right after a fetch (the worst case) mints within 10 s;
* a flood of tokens with random ``kid``\\ s, spread over every worker, costs the issuer at most
  one fetch per 10 s: the gate is an atomic ``cache.add`` in the *shared* cache, so the workers
  fetch one at a time (single flight).

The issuer is :class:`FakeIdP` in this process (its fetches are timed where they arrive); the
index is the example index under gunicorn (tests/support/server.py) with its default key
settings. The cache must be shared by the workers with an atomic ``add``: ``CACHE_URL`` naming
Redis or Memcached (CI's second run); the test skips otherwise, because Django's database cache
let two workers win the gate together under this flood.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.plugins.secrets_guard import count, record_secret
from tests.support.idp import JWKS_PATH, FakeIdP
from tests.support.server import Agent, IndexServer

pytestmark = [pytest.mark.slow]

AUDIENCE = "key-rotation.example.internal"
#: The promise: a new key is accepted within this many seconds of its publication, and an
#: unknown-kid flood costs at most one fetch per this many seconds.
WINDOW = 10.0
#: Poll interval and allowance for the mint request itself when measuring "within 10 s".
POLL = 0.2
SLACK = 0.75
FLOOD_SECONDS = 25.0
FLOOD_THREADS = 8


class TimedIdP(FakeIdP):
    """FakeIdP that also records when each JWKS request arrived (monotonic clock)."""

    def __init__(self, **kwargs: Any) -> None:
        self.jwks_times: list[float] = []
        super().__init__(**kwargs)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.split("?", 1)[0] == JWKS_PATH:
            with self._lock:
                self.jwks_times.append(time.monotonic())
        super()._handle(handler)


class SharedCacheIndexServer(IndexServer):
    """The example index under gunicorn (http only) with a cache every worker shares."""

    def start(self) -> SharedCacheIndexServer:
        self.database.create()
        self.agent = Agent(self.env(), self.workdir / "agent.log")
        self.agent.manage("migrate", "--noinput", "-v", "0")
        self.agent.manage("createcachetable")  # no-op unless the cache is the database cache
        assert self.http_port is not None
        self._spawn(self.http_port, tls=False)
        self._wait_ready(f"{self.http_base_url}/simple/")
        return self


def _shared_cache_url() -> str:
    outer = os.environ.get("CACHE_URL", "")
    if outer and not outer.startswith(("locmem", "dummy")):
        return outer  # Redis or Memcached: shared already
    # Django's database cache is shared, but its add() computes "now" before it takes the
    # write lock and stores whole seconds: under this flood two workers were seen to win the
    # gate together on SQLite too. Single flight needs an atomic add (Redis, Memcached), which
    # is what docs/operations.md asks of production; CI's second run has Redis.
    pytest.skip("single flight needs CACHE_URL naming Redis or Memcached (atomic add)")


@pytest.fixture(scope="module")
def idp() -> Iterator[TimedIdP]:
    with TimedIdP() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, idp: TimedIdP) -> Iterator[IndexServer]:
    workdir: Path = tmp_path_factory.mktemp("key-rotation")
    index = SharedCacheIndexServer(
        workdir / "server",
        audience=AUDIENCE,
        workers=4,
        threads=4,
        # Key settings are the example index's defaults (JWKS_REFRESH_COOLDOWN = 60).
        extra_env={"CACHE_URL": _shared_cache_url()},
    )
    try:
        index.start()
        assert index.agent is not None
        index.agent("create_project", name="widgets")
        index.agent(
            "execute",
            code=(
                "from trusted_publishing.models import GitHubPublisher, TrustedIssuer\n"
                f"issuer = TrustedIssuer.objects.create(url={idp.url!r}, provider='github', "
                "name='rotating issuer', key_source='discovery')\n"
                "p = GitHubPublisher.objects.create(issuer=issuer, repository_owner='acme', "
                "repository_name='widgets', workflow_filename='release.yml')\n"
                "p.add_projects(['widgets'])\n"
                "result = p.pk\n"
            ),
        )
    except BaseException:
        print(index.log_tail())
        index.stop()
        raise
    yield index
    index.stop()


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback server: no proxies or CA variables from the machine
    return session


def _mint(server: IndexServer, session: requests.Session, token: str) -> requests.Response:
    response = session.post(
        server.http_base_url + "/_/oidc/mint-token", json={"token": token}, timeout=30
    )
    if response.status_code == 200:
        record_secret(response.json()["token"], "minted token")
    return response


def _token(idp: FakeIdP, kid: str | None = None) -> str:
    token = idp.issuer.sign(idp.github_claims(AUDIENCE), kid=kid)
    record_secret(token, "jwt")
    return token


def test_rotated_key_mints_within_10_s_and_a_flood_costs_one_fetch_per_10_s(
    server: IndexServer, idp: TimedIdP
) -> None:
    assert server.agent is not None
    backend, cooldown = server.agent(
        "execute",
        code=(
            "from django.conf import settings\n"
            "result = [settings.CACHES['default']['BACKEND'], "
            "settings.TRUSTED_PUBLISHING['JWKS_REFRESH_COOLDOWN']]\n"
        ),
    )
    assert "locmem" not in backend.lower()  # the workers share the gate
    assert cooldown == 60  # the default: the 10 s promise must hold without tuning
    session = _session()

    # --- rotation -----------------------------------------------------------------------------
    first = _mint(server, session, _token(idp))
    assert first.status_code == 200, first.text
    assert len(idp.jwks_times) == 1
    # The provider publishes a new key right after our fetch (the worst case) and signs with it.
    idp.rotate(keep_old=True)
    published = time.monotonic()
    refused = 0
    accepted_after: float | None = None
    while time.monotonic() - published < WINDOW + 5:
        response = _mint(server, session, _token(idp))
        if response.status_code == 200:
            accepted_after = time.monotonic() - published
            break
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid-token"
        refused += 1
        time.sleep(POLL)
    count("rotation polls refused", refused)
    assert accepted_after is not None, "the new key was not accepted within 15 s"
    print(f"\nnew key accepted {accepted_after:.2f} s after publication ({refused} refusals)")
    assert accepted_after <= WINDOW + SLACK, accepted_after
    assert len(idp.jwks_times) == 2  # the refusals before it cost no fetch
    # Every worker now uses the new key (the cache is shared): no further fetch.
    for _ in range(16):
        assert _mint(server, session, _token(idp)).status_code == 200
    assert len(idp.jwks_times) == 2

    # --- flood of random kids over every worker ------------------------------------------------
    flood_start = time.monotonic()
    statuses: list[int] = []
    lock = threading.Lock()

    def flood() -> None:
        own = _session()
        local: list[int] = []
        while time.monotonic() - flood_start < FLOOD_SECONDS:
            response = _mint(server, own, _token(idp, kid=uuid.uuid4().hex))
            local.append(response.status_code)
        with lock:
            statuses.extend(local)

    threads = [threading.Thread(target=flood) for _ in range(FLOOD_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=FLOOD_SECONDS + 60)
    count("hostile tokens tried", len(statuses))
    count("concurrent requests", FLOOD_THREADS)
    assert statuses and set(statuses) == {422}, set(statuses)

    during = [t - flood_start for t in idp.jwks_times if t >= flood_start]
    times = idp.jwks_times[1:]  # the rotation fetch, then the flood's
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    print(
        f"flood: {len(statuses)} requests in {FLOOD_SECONDS:.0f} s, JWKS fetches at "
        f"{[round(t, 2) for t in during]} s, gaps {[round(g, 2) for g in gaps]} s"
    )
    # Never two fetches within 10 s (single flight across the 4 workers) ...
    assert all(gap >= WINDOW - 0.05 for gap in gaps), gaps
    # ... and, as promised for rotation, the gate does open again every 10 s.
    assert 1 <= len(during) <= int(FLOOD_SECONDS // WINDOW) + 1, during
    assert idp.discovery_fetches == idp.jwks_fetches == len(idp.jwks_times)
