"""Database work per request stays small and does not grow with the number of publishers.

The figures themselves are reported by the benchmark (``python -m benchmarks``); these tests pin
that they stay bounded and independent of history.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from trusted_publishing.models import (
    GitHubPublisher,
    IssuedToken,
    Publisher,
    PublisherProject,
    TrustedIssuer,
)
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import assert_minted, post_mint

#: SELECT issuer, SELECT publishers, SELECT their projects, SAVEPOINT, INSERT replay, INSERT
#: token, INSERT audit, RELEASE (the transaction statements are only counted inside tests).
STEADY_STATE_MINT = 8
OTHERS = 2000


def measured_mint(client: Any, issuer: TestIssuer) -> tuple[int, list[str]]:
    token = issuer.sign(issuer.github_claims())
    with CaptureQueriesContext(connection) as queries:
        assert_minted(post_mint(client, token))
    return len(queries), [q["sql"] for q in queries.captured_queries]


def add_other_publishers(issuer: TestIssuer, n: int) -> None:
    """n other GitHub publishers, each with two projects (one of them also named widgets)."""
    row = TrustedIssuer.objects.get(url=issuer.url)
    parents = Publisher.objects.bulk_create(
        Publisher(
            provider="github",
            issuer=row,
            subject=f"org{i}/repo{i}",
            identity_key=f"github\x1f{row.pk}\x1forg{i}/repo{i}\x1frelease.yml\x1f",
        )
        for i in range(n)
    )
    ids = [p.pk for p in parents]
    if None in ids:  # backends that do not return ids from bulk inserts
        ids = list(Publisher.objects.filter(subject__startswith="org").values_list("pk", flat=True))
    table = connection.ops.quote_name(GitHubPublisher._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (publisher_ptr_id, repository_owner, repository_name, "  # noqa: S608
            "workflow_filename, environment, repository_owner_id, repository_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(pk, f"org{i}", f"repo{i}", "release.yml", "", "", "") for i, pk in enumerate(ids)],
        )
    PublisherProject.objects.bulk_create(
        [PublisherProject(publisher_id=pk, name=f"project-{i}") for i, pk in enumerate(ids)]
        + [PublisherProject(publisher_id=pk, name="widgets") for pk in ids]
    )


def test_mint_query_count_is_small_and_independent_of_the_publisher_count(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))  # warm-up
    before, sql_before = measured_mint(client, github_issuer)
    assert before <= STEADY_STATE_MINT, sql_before

    add_other_publishers(github_issuer, OTHERS)
    assert GitHubPublisher.objects.count() == OTHERS + 1
    assert GitHubPublisher.objects.get(repository_name="repo7").project_names() == [
        "project-7",
        "widgets",
    ]
    after, sql_after = measured_mint(client, github_issuer)
    assert after == before, sql_after
    assert IssuedToken.objects.filter(publisher=github_publisher).count() == 3


def test_other_publishers_are_really_candidates_for_their_own_tokens(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    # The bulk-created rows are complete publishers (so the comparison above is meaningful).
    add_other_publishers(github_issuer, 3)
    claims = github_issuer.github_claims(repository="org2/repo2")
    assert_minted(post_mint(client, github_issuer.sign(claims)))
    assert IssuedToken.objects.get().projects == ["project-2", "widgets"]


#: SELECT token (authentication); SAVEPOINT, UPDATE token (claim), SELECT token + publisher,
#: SELECT project, UPDATE token (save), RELEASE; INSERT audit.
UPLOAD = 8


def test_upload_statements_are_bounded_and_independent_of_history(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    def measured_upload() -> list[str]:
        raw = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
        with CaptureQueriesContext(connection) as queries:
            principal = authenticate_upload_token(raw)
            assert principal is not None
            authorize_upload(principal, "widgets")
        return [q["sql"] for q in queries.captured_queries]

    before = measured_upload()
    assert len(before) <= UPLOAD, before
    add_other_publishers(github_issuer, OTHERS)
    assert len(measured_upload()) == len(before)


def test_cold_authentication_is_one_query(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    raw = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    with CaptureQueriesContext(connection) as queries:
        principal = authenticate_upload_token(raw)
        assert principal is not None
        assert principal.publisher.repository == "acme/widgets"  # no lazy load afterwards
    assert len(queries) == 1
