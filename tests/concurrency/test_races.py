"""Races against a real multi-process server (gunicorn workers, PostgreSQL).

* one identity token exchanged 50 times at once: exactly one upload token, 49 clean
  ``invalid-reuse-token`` refusals;
* one single-use upload token used by 50 concurrent uploads: exactly one accepted;
* a burst of exchanges of different identity tokens: every one succeeds, none is lost, and the
  audit trail has a row for each.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.plugins.secrets_guard import count, record_secret

from .conftest import RaceIndex

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
N = 50
TIMEOUT = 60


def _all_at_once(n: int, call: Callable[[int, requests.Session], Any]) -> list[Any]:
    """Run ``call`` n times in parallel, released together by a barrier."""
    barrier = threading.Barrier(n)

    def run(i: int, session: requests.Session) -> Any:
        barrier.wait(timeout=TIMEOUT)
        return call(i, session)

    sessions = [requests.Session() for _ in range(n)]
    for session in sessions:
        session.trust_env = False
    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(run, i, sessions[i]) for i in range(n)]
            return [f.result(timeout=TIMEOUT * 2) for f in futures]
    finally:
        for session in sessions:
            session.close()
    count("concurrent requests", n)


def _mint(index: RaceIndex, session: requests.Session, jwt: str, **extra: Any) -> Any:
    response = session.post(
        index.url + "/_/oidc/mint-token", json={"token": jwt, **extra}, timeout=TIMEOUT
    )
    if response.status_code == 200:
        record_secret(response.json()["token"], "minted token")
    return response


def test_one_identity_token_exchanged_50_times_at_once(race_index: RaceIndex) -> None:
    repository, _ = race_index.publisher()
    jwt = race_index.jwt(repository)
    responses = _all_at_once(N, lambda i, s: _mint(race_index, s, jwt))
    count("concurrent requests", N)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 422: N - 1}, statuses
    codes = Counter(r.json()["code"] for r in responses if r.status_code == 422)
    assert codes == {"invalid-reuse-token": N - 1}
    for response in responses:
        if response.status_code == 422:
            assert response.headers["Content-Type"] == "application/problem+json"
    subject = repository.lower()
    assert race_index.count(f"IssuedToken.objects.filter(subject={subject!r}).count()") == 1
    assert (
        race_index.count(
            "AuditEvent.objects.filter(kind='exchange.failed', "
            "error_code='invalid-reuse-token').count()"
        )
        >= N - 1
    )


def test_one_single_use_token_for_50_concurrent_uploads(race_index: RaceIndex) -> None:
    repository, project = race_index.publisher()
    session = race_index.session()
    minted = _mint(race_index, session, race_index.jwt(repository), features=["single-use-token"])
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]

    def upload(i: int, s: requests.Session) -> requests.Response:
        # A distinct file per request: only the token's single use can stop the others.
        return race_index.upload(s, token, project, f"1.0.{i}")

    responses = _all_at_once(N, upload)
    count("concurrent requests", N)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] == 1, (statuses, [r.text for r in responses if r.status_code >= 500])
    # The losers are refused as unauthenticated (token already consumed) or forbidden.
    assert set(statuses) <= {200, 401, 403}, statuses
    for response in responses:
        assert token not in response.text
    files = race_index.count(
        f"File.objects.filter(release__project__normalized_name={project!r}).count()"
    )
    assert files == 1
    authorised = race_index.count(
        f"AuditEvent.objects.filter(kind='upload.authorised', projects=[{project!r}]).count()"
    )
    assert authorised == 1


def test_burst_of_distinct_exchanges_loses_nothing(race_index: RaceIndex) -> None:
    repository, project = race_index.publisher()
    jwts = [race_index.jwt(repository) for _ in range(N * 2)]

    def mint_two(i: int, s: requests.Session) -> list[Any]:
        return [_mint(race_index, s, jwts[2 * i]), _mint(race_index, s, jwts[2 * i + 1])]

    responses = [r for pair in _all_at_once(N, mint_two) for r in pair]
    count("concurrent requests", len(responses))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: N * 2}, statuses
    tokens = {r.json()["token"] for r in responses}
    assert len(tokens) == N * 2  # all distinct
    subject = repository.lower()
    assert race_index.count(f"IssuedToken.objects.filter(subject={subject!r}).count()") == N * 2
    minted_audit = race_index.count(
        f"AuditEvent.objects.filter(kind='token.minted', projects=[{project!r}]).count()"
    )
    assert minted_audit == N * 2
    failed = race_index.count(
        "AuditEvent.objects.filter(kind='exchange.failed', "
        f"claims__repository={repository!r}).count()"
    )
    assert failed == 0


def test_concurrent_first_exchanges_of_a_pending_publisher(race_index: RaceIndex) -> None:
    """Several jobs of a pending publisher's first release race to create the project."""
    repository, project = race_index.publisher(pending=True)
    jwts = [race_index.jwt(repository) for _ in range(20)]
    responses = _all_at_once(20, lambda i, s: _mint(race_index, s, jwts[i]))
    count("concurrent requests", 20)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] >= 1, statuses
    assert set(statuses) <= {200, 422}, (
        statuses,
        [r.text[:200] for r in responses if r.status_code >= 500],
    )
    for response in responses:
        if response.status_code == 422:
            assert response.json()["code"] == "invalid-pending-publisher"
    assert race_index.count(f"Project.objects.filter(normalized_name={project!r}).count()") == 1
    assert (
        race_index.count(
            f"AuditEvent.objects.filter(kind='publisher.reified', projects=[{project!r}]).count()"
        )
        == 1
    )
