"""The process-local cache across real worker processes (gunicorn, PostgreSQL, the shared cache).

Each worker keeps an issuer and a token lookup for ``LOCAL_CACHE_TTL`` seconds (default 5). What
that may and may not delay, with the change made in *another* process (the agent, as an operator's
admin or CLI would):

* disabling an issuer stops minting in every worker once the TTL has passed;
* revoking a token stops its uploads in every worker at once, even in workers that hold the
  token's lookup: authorisation re-checks the database.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter

import pytest
import requests

from tests.plugins.secrets_guard import record_secret
from trusted_publishing.conf import DEFAULTS

from .conftest import AUDIENCE, RaceIndex, register_issuer
from .test_races import _all_at_once, _mint

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
#: Enough requests that every one of the 4 workers serves some of them.
N = 40


def test_disabled_issuer_stops_minting_in_every_worker_within_the_ttl(
    race_index: RaceIndex,
) -> None:
    url = "https://token.actions.ttl-disable.test"
    issuer = register_issuer(race_index.agent, url)
    repository, _project = race_index.publisher(issuer_url=url)

    def jwt() -> str:
        return issuer.sign(issuer.github_claims(repository, aud=AUDIENCE))

    # Every worker mints, so every worker now holds the issuer in its local cache.
    jwts = [jwt() for _ in range(N)]
    before = _all_at_once(N, lambda i, s: _mint(race_index, s, jwts[i]))
    assert Counter(r.status_code for r in before) == {200: N}

    # An operator disables the issuer in another process (save(): signals, shared cache entry
    # dropped), then waits out the local copies.
    race_index.agent(
        "execute",
        code=(
            "from trusted_publishing.models import TrustedIssuer\n"
            f"issuer = TrustedIssuer.objects.get(url={url!r})\n"
            "issuer.enabled = False\n"
            "issuer.save()\n"
            "result = True\n"
        ),
    )
    time.sleep(DEFAULTS["LOCAL_CACHE_TTL"] + 0.5)

    jwts = [jwt() for _ in range(N)]
    after = _all_at_once(N, lambda i, s: _mint(race_index, s, jwts[i]))
    statuses = Counter(r.status_code for r in after)
    assert statuses == {403: N}, statuses
    assert {r.json()["code"] for r in after} == {"not-enabled"}


def test_revocation_stops_uploads_at_once_in_workers_holding_the_token(
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

    # Uploads in every worker: each now holds the token's lookup locally.
    first = _all_at_once(N, lambda i, s: upload(i, s, "0"))
    assert Counter(r.status_code for r in first) == {200: N}, [r.text[:200] for r in first]

    token_id = race_index.count(
        f"IssuedToken.objects.get(digest={hashlib.sha256(token.encode()).hexdigest()!r}).pk"
    )
    race_index.agent.manage("trusted_publishing", "revoke-token", str(token_id))

    # No waiting: not one more file may be accepted, in any worker.
    second = _all_at_once(N, lambda i, s: upload(i, s, "1"))
    statuses = Counter(r.status_code for r in second)
    assert set(statuses) <= {401, 403}, statuses
    files = race_index.count(
        f"File.objects.filter(release__project__normalized_name={project!r}).count()"
    )
    assert files == N
    denied = race_index.count(
        f"AuditEvent.objects.filter(kind='upload.denied', projects=[{project!r}]).count()"
    )
    # Workers that still held the lookup refused at authorisation, and audited it.
    assert denied == statuses[403]
