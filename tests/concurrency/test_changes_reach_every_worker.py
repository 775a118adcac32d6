"""An operator's change reaches every worker process on the very next request.

Gunicorn (4 workers), PostgreSQL and the shared cache; the change is made in *another* process
(the agent, as an operator's admin or CLI would). Issuers, publishers and tokens are read from
the database on every request, so nothing needs to expire first:

* a publisher disabled: the next mint and the next upload with its live token are refused in
  every worker;
* an issuer disabled: the next mint is refused in every worker;
* a token revoked: the next upload is refused in every worker.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import requests

from tests.plugins.secrets_guard import record_secret

from .conftest import AUDIENCE, RaceIndex, register_issuer
from .test_races import _all_at_once, _mint

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
#: Enough requests that every one of the 4 workers serves some of them.
N = 40


def _execute(index: RaceIndex, code: str) -> None:
    index.agent("execute", code=code + "result = True\n")


def test_disabled_publisher_is_refused_by_the_next_request_in_every_worker(
    race_index: RaceIndex,
) -> None:
    repository, project = race_index.publisher()
    session = race_index.session()
    minted = _mint(race_index, session, race_index.jwt(repository), features=["multi-use-token"])
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    record_secret(token, "minted token")
    # Every worker has served this publisher (mints and uploads) just before the change.
    jwts = [race_index.jwt(repository) for _ in range(N)]
    warm = _all_at_once(N, lambda i, s: _mint(race_index, s, jwts[i]))
    assert Counter(r.status_code for r in warm) == {200: N}
    uploads = _all_at_once(N, lambda i, s: race_index.upload(s, token, project, f"1.0.{i}"))
    assert Counter(r.status_code for r in uploads) == {200: N}, [r.text[:200] for r in uploads]

    _execute(
        race_index,
        "from trusted_publishing.models import GitHubPublisher\n"
        f"p = GitHubPublisher.objects.get(repository_name={project!r})\n"
        "p.enabled = False\n"
        "p.save(update_fields=['enabled'])\n",
    )

    # No waiting: the very next requests, in every worker.
    jwts = [race_index.jwt(repository) for _ in range(N)]
    mints = _all_at_once(N, lambda i, s: _mint(race_index, s, jwts[i]))
    assert Counter((r.status_code, r.json()["code"]) for r in mints) == {
        (422, "invalid-publisher"): N
    }
    refused = _all_at_once(N, lambda i, s: race_index.upload(s, token, project, f"2.0.{i}"))
    statuses = Counter(r.status_code for r in refused)
    assert set(statuses) <= {401, 403}, statuses
    files = race_index.count(
        f"File.objects.filter(release__project__normalized_name={project!r}).count()"
    )
    assert files == N


def test_disabled_issuer_is_refused_by_the_next_mint_in_every_worker(
    race_index: RaceIndex,
) -> None:
    url = "https://token.actions.disable-now.test"
    issuer = register_issuer(race_index.agent, url)
    repository, _project = race_index.publisher(issuer_url=url)

    def jwt() -> str:
        return issuer.sign(issuer.github_claims(repository, aud=AUDIENCE))

    jwts = [jwt() for _ in range(N)]
    before = _all_at_once(N, lambda i, s: _mint(race_index, s, jwts[i]))
    assert Counter(r.status_code for r in before) == {200: N}

    _execute(
        race_index,
        "from trusted_publishing.models import TrustedIssuer\n"
        f"issuer = TrustedIssuer.objects.get(url={url!r})\n"
        "issuer.enabled = False\n"
        "issuer.save()\n",
    )

    jwts = [jwt() for _ in range(N)]
    after = _all_at_once(N, lambda i, s: _mint(race_index, s, jwts[i]))
    assert Counter((r.status_code, r.json()["code"]) for r in after) == {(403, "not-enabled"): N}


def test_revoked_token_is_refused_by_the_next_upload_in_every_worker(
    race_index: RaceIndex,
) -> None:
    repository, project = race_index.publisher()
    session = race_index.session()
    minted = _mint(race_index, session, race_index.jwt(repository), features=["multi-use-token"])
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    record_secret(token, "minted token")

    def upload(i: int, s: requests.Session, tag: str) -> requests.Response:
        return race_index.upload(s, token, project, f"1.{tag}.{i}")

    first = _all_at_once(N, lambda i, s: upload(i, s, "0"))
    assert Counter(r.status_code for r in first) == {200: N}, [r.text[:200] for r in first]

    token_id = race_index.count(
        f"IssuedToken.objects.get(digest={hashlib.sha256(token.encode()).hexdigest()!r}).pk"
    )
    race_index.agent.manage("trusted_publishing", "revoke-token", str(token_id))

    second = _all_at_once(N, lambda i, s: upload(i, s, "1"))
    statuses = Counter(r.status_code for r in second)
    assert set(statuses) <= {401, 403}, statuses
    files = race_index.count(
        f"File.objects.filter(release__project__normalized_name={project!r}).count()"
    )
    assert files == N


def test_reenabling_a_publisher_does_not_revive_its_old_tokens(race_index: RaceIndex) -> None:
    repository, project = race_index.publisher()
    session = race_index.session()
    minted = _mint(race_index, session, race_index.jwt(repository), features=["multi-use-token"])
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    record_secret(token, "minted token")
    assert race_index.upload(session, token, project, "1.0").status_code == 200

    for enabled in (False, True):
        _execute(
            race_index,
            "from trusted_publishing.models import GitHubPublisher\n"
            f"p = GitHubPublisher.objects.get(repository_name={project!r})\n"
            f"p.enabled = {enabled!r}\n"
            "p.save(update_fields=['enabled'])\n",
        )

    again = _all_at_once(N, lambda i, s: race_index.upload(s, token, project, f"2.0.{i}"))
    assert set(Counter(r.status_code for r in again)) <= {401, 403}
    # The publisher itself publishes again with a new token.
    fresh = _mint(race_index, session, race_index.jwt(repository))
    assert fresh.status_code == 200, fresh.text
    record_secret(fresh.json()["token"], "minted token")
    assert race_index.upload(session, fresh.json()["token"], project, "3.0").status_code == 200
