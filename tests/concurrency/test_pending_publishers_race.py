"""Two pending publishers for one new project race their first exchanges (gunicorn with 4
workers, PostgreSQL): exactly one of them creates the project; every job of the other gets a
clean 4xx, and nothing of it is written."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.plugins.secrets_guard import count

from .conftest import AUDIENCE, ISSUER_URL, RaceIndex
from .test_races import _all_at_once, _mint

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
JOBS = 12  # per publisher


def _pending_publisher(index: RaceIndex, repository: str, project: str) -> None:
    owner, name = repository.split("/")
    index.agent(
        "execute",
        code=(
            "from datetime import timedelta\n"
            "from django.utils import timezone\n"
            "from trusted_publishing.models import GitHubPublisher, TrustedIssuer\n"
            f"issuer = TrustedIssuer.objects.get(url={ISSUER_URL!r})\n"
            "p = GitHubPublisher.objects.create(issuer=issuer, "
            f"repository_owner={owner!r}, repository_name={name!r}, "
            "workflow_filename='release.yml', "
            "pending_expires_at=timezone.now() + timedelta(days=1))\n"
            f"p.add_projects([{project!r}])\n"
            "result = p.pk\n"
        ),
    )


def test_exactly_one_pending_publisher_creates_a_project(race_index: RaceIndex) -> None:
    project = "contested-" + uuid.uuid4().hex[:8]
    repositories = [f"acme/{project}-a", f"evil/{project}-b"]
    for repository in repositories:
        _pending_publisher(race_index, repository, project)
    jwts = [
        race_index.issuer.sign(race_index.issuer.github_claims(repo, aud=AUDIENCE))
        for repo in repositories
        for _ in range(JOBS)
    ]
    responses = _all_at_once(len(jwts), lambda i, s: _mint(race_index, s, jwts[i]))
    count("concurrent requests", len(jwts))

    by_repo = {
        repo: Counter(
            (r.status_code, r.json().get("code")) for r in responses[i * JOBS : (i + 1) * JOBS]
        )
        for i, repo in enumerate(repositories)
    }
    winners = [repo for repo, outcome in by_repo.items() if (200, None) in outcome]
    assert len(winners) == 1, by_repo
    (loser,) = [repo for repo in repositories if repo not in winners]
    # The winner's other jobs mint as an ordinary publisher; every job of the loser is refused.
    assert by_repo[winners[0]] == {(200, None): JOBS}, by_repo
    assert by_repo[loser] == {(422, "invalid-pending-publisher"): JOBS}, by_repo

    assert race_index.count(f"Project.objects.filter(normalized_name={project!r}).count()") == 1
    loser_state = race_index.agent(
        "execute",
        code=(
            "from trusted_publishing.models import CreatedProject, GitHubPublisher, IssuedToken\n"
            f"p = GitHubPublisher.objects.get(repository_owner={loser.split('/')[0]!r})\n"
            "result = [p.pending_expires_at is not None, "
            "IssuedToken.objects.filter(publisher=p).count(), "
            f"CreatedProject.objects.get(name={project!r}).publisher_id != p.pk]\n"
        ),
    )
    # Nothing of the loser was written: still pending, no token, not recorded as creator.
    assert loser_state == [True, 0, True]
    refused = race_index.count(
        "AuditEvent.objects.filter(kind='exchange.failed', "
        f"error_code='invalid-pending-publisher', claims__repository={loser!r}).count()"
    )
    assert refused == JOBS
