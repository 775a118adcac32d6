"""The database work of a mint and an upload.

It stays small and does not grow with the number of publishers. The figures themselves are
reported by the benchmark (``python -m benchmarks``); these tests pin that they stay bounded and
independent of history.

Every row a mint and an upload write goes through the ORM: a ``post_save`` receiver and Django's
query capture (what Sentry, APM agents and the debug toolbar hook into) see each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext

from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    IssuedToken,
    Publisher,
    PublisherProject,
    TrustedIssuer,
    UsedIdentityToken,
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


#: SELECT token + publisher, SELECT provider row (authentication); SAVEPOINT, UPDATE token
#: (claim), SELECT token + publisher, SELECT project, UPDATE token (save), INSERT audit, RELEASE.
UPLOAD = 9


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


def test_authentication_is_two_indexed_lookups(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    raw = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    with CaptureQueriesContext(connection) as queries:
        principal = authenticate_upload_token(raw)
        assert principal is not None
        assert principal.publisher.repository == "acme/widgets"  # no lazy load afterwards
    # The token with its base publisher, then that publisher's own provider row: two primary-
    # key or unique lookups instead of a join of every provider's table.
    assert len(queries) == 2


# --- every written row is visible to receivers and query capture ----------------------------------


@pytest.fixture
def saved() -> Iterator[list[tuple[type, Any, bool, frozenset[str] | None]]]:
    """(model, pk, created, update_fields) of every post_save of the app's models."""
    seen: list[tuple[type, Any, bool, frozenset[str] | None]] = []

    def receiver(sender: type, instance: Any, created: bool, update_fields: Any, **kw: Any):
        if sender._meta.app_label == "trusted_publishing":
            seen.append((sender, instance.pk, created, update_fields))

    post_save.connect(receiver, weak=False, dispatch_uid="rows-visible")
    yield seen
    post_save.disconnect(dispatch_uid="rows-visible")


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"].split()[0] + " " + q["sql"].split()[2 if q["sql"].startswith("INSERT") else 1]
        for q in queries.captured_queries
        if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))
    ]


def _table(model: type) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def test_a_mint_writes_only_rows_that_receivers_and_query_capture_see(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher, saved: list
) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))

    token = IssuedToken.objects.get()
    replay = UsedIdentityToken.objects.get()
    event = AuditEvent.objects.get(kind="token.minted")
    created = {(model, pk) for model, pk, is_new, _ in saved if is_new}
    assert created == {
        (UsedIdentityToken, replay.pk),
        (IssuedToken, token.pk),
        (AuditEvent, event.pk),
    }
    # The first mint binds the repository's immutable ids and stamps "last used": one save of
    # the publisher that receivers see with exactly those fields.
    updates = [(model, pk, fields) for model, pk, is_new, fields in saved if not is_new]
    assert updates == [
        (
            GitHubPublisher,
            github_publisher.pk,
            frozenset({"repository_owner_id", "repository_id", "last_used_at"}),
        )
    ]
    writes = _writes(queries)
    for model in (UsedIdentityToken, IssuedToken, AuditEvent):
        assert f"INSERT {_table(model)}" in writes, writes
    # Replay record first: a concurrent replay fails before anything else is written.
    assert writes[0] == f"INSERT {_table(UsedIdentityToken)}", writes
    # Every write is one of those rows (no statement behind the receivers' back).
    tables = {_table(m) for m in (UsedIdentityToken, IssuedToken, AuditEvent)}
    tables |= {_table(m) for m in (GitHubPublisher, GitHubPublisher.__mro__[1])}
    assert {w.split(" ", 1)[1] for w in writes} <= tables, writes


def test_an_upload_writes_only_rows_that_receivers_and_query_capture_see(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher, saved: list
) -> None:
    raw = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    saved.clear()
    with CaptureQueriesContext(connection) as queries:
        principal = authenticate_upload_token(raw)
        assert principal is not None
        authorize_upload(principal, "widgets")

    token = IssuedToken.objects.get()
    assert token.upload_count == 1 and token.used_at is not None
    event = AuditEvent.objects.get(kind="upload.authorised")
    assert [(m, pk, new) for m, pk, new, _ in saved] == [
        (IssuedToken, token.pk, False),
        (AuditEvent, event.pk, True),
    ]
    assert saved[0][3] == frozenset({"used_at", "last_used_at", "upload_count"})
    writes = _writes(queries)
    assert f"INSERT {_table(AuditEvent)}" in writes
    assert f"UPDATE {_table(IssuedToken)}" in writes
    assert {w.split(" ", 1)[1] for w in writes} == {_table(IssuedToken), _table(AuditEvent)}
