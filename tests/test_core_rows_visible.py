"""Every row a mint and an upload write goes through the ORM: a ``post_save`` receiver and
Django's query capture (what Sentry, APM agents and the debug toolbar hook into) see each one."""

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
    UsedIdentityToken,
)
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import assert_minted, post_mint


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
