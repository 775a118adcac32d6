"""The prebuilt statements (fastsql.py) write exactly what the ORM would, stay visible to anything
that observes queries, and keep Django's exception classes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_publishing import fastsql
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import AuditEvent, GitHubPublisher, IssuedToken, UsedIdentityToken
from trusted_publishing.testing import TestIssuer

from .providers.support import assert_minted, post_mint

pytestmark = pytest.mark.django_db


NOW = timezone.now()


def _rows(
    publisher: GitHubPublisher, key: str, now: Any = NOW
) -> list[tuple[type, dict[str, Any]]]:
    claims = {"sub": "repo:acme/widgets:ref:refs/tags/v1", "nested": {"a": [1, "\u00e9"]}}
    return [
        (UsedIdentityToken, {"key": key, "issuer_url": "https://i", "expires_at": now}),
        (
            IssuedToken,
            {
                "digest": key,
                "publisher_id": publisher.pk,
                "projects": ["widgets"],
                "single_use": True,
                "created_at": now,
                "expires_at": now + timedelta(minutes=15),
                "issuer_url": "https://i",
                "subject": "acme/widgets",
                "run_id": "42",
                "claims": claims,
            },
        ),
        (
            AuditEvent,
            {
                "created_at": now,
                "kind": "token.minted",
                "outcome": "success",
                "message": "m",
                "publisher_id": publisher.pk,
                "projects": ["widgets"],
                "claims": claims,
                "remote_addr": "::ffff:127.0.0.1",
            },
        ),
    ]


def _as_orm(model: type, values: dict[str, Any]) -> Any:
    obj = model(**values)
    obj.save(force_insert=True)
    return obj


def test_rows_are_the_rows_the_orm_writes(github_publisher: GitHubPublisher) -> None:
    fast = _rows(github_publisher, "a" * 64)
    ids = fastsql.insert_chain(fast, link="token_id")
    orm = _rows(github_publisher, "b" * 64)
    used = _as_orm(*orm[0])
    token = _as_orm(*orm[1])
    event = _as_orm(AuditEvent, {**orm[2][1], "token_id": token.pk})

    def stored(model: type, pk: Any, drop: set[str]) -> dict[str, Any]:
        row = model.objects.filter(pk=pk).values().get()
        return {k: v for k, v in row.items() if k not in drop}

    assert stored(UsedIdentityToken, "a" * 64, {"key", "created_at"}) == stored(
        UsedIdentityToken, used.pk, {"key", "created_at"}
    )
    assert stored(IssuedToken, ids[1], {"id", "digest"}) == stored(
        IssuedToken, token.pk, {"id", "digest"}
    )
    assert stored(AuditEvent, ids[2], {"id", "token_id"}) == stored(
        AuditEvent, event.pk, {"id", "token_id"}
    )
    # The event names the token written with it; auto_now_add was filled in.
    assert AuditEvent.objects.get(pk=ids[2]).token_id == ids[1]
    assert UsedIdentityToken.objects.get(pk="a" * 64).created_at is not None


def test_loaded_instance_equals_the_stored_row(github_publisher: GitHubPublisher) -> None:
    rows = _rows(github_publisher, "c" * 64)
    ids = fastsql.insert_chain(rows, link="token_id")
    loaded = fastsql.loaded(IssuedToken, ids[1], rows[1][1], "default")
    stored = IssuedToken.objects.get(pk=ids[1])
    fields = [f.attname for f in IssuedToken._meta.concrete_fields]
    assert {f: getattr(loaded, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert loaded._state.adding is False and loaded._state.db == "default"


def test_a_duplicate_is_djangos_integrity_error_and_writes_nothing(
    github_publisher: GitHubPublisher,
) -> None:
    fastsql.insert_chain(_rows(github_publisher, "d" * 64), link="token_id")
    before = (IssuedToken.objects.count(), AuditEvent.objects.count())
    with pytest.raises(IntegrityError), transaction.atomic():
        fastsql.insert_chain(_rows(github_publisher, "d" * 64), link="token_id")
    assert (IssuedToken.objects.count(), AuditEvent.objects.count()) == before


def test_execute_wrappers_see_every_statement_of_a_mint(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    seen: list[str] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql.split()[0].upper())
        return execute(sql, params, many, context)

    # A first mint records "last used" (at most once a minute): the ones below write only rows.
    assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    with connection.execute_wrapper(spy):
        assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    with CaptureQueriesContext(connection) as captured:
        assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    logged = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    data = [verb for verb in logged if verb not in {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"}]
    assert "SELECT" in seen and data.count("SELECT") == 1
    # The same writes either way: three INSERTs, or one statement of three CTEs on PostgreSQL.
    writes = ["WITH"] if connection.vendor == "postgresql" else ["INSERT"] * 3
    control = {"SELECT", "SAVEPOINT", "RELEASE", "BEGIN", "COMMIT"}
    assert [v for v in seen if v not in control] == writes
    assert [v for v in data if v != "SELECT"] == writes


def _spy_on(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[str]:
    """The verbs of the statements ``cls.execute`` runs from now on."""
    seen: list[str] = []
    original = cls.execute

    def execute(self: Any, sql: str, params: Any = None) -> Any:
        seen.append(sql.split()[0].upper())
        return original(self, sql, params)

    monkeypatch.setattr(cls, "execute", execute)
    return seen


def test_direct_cursor_unless_direct_sql_is_off(
    client: Any,
    github_issuer: TestIssuer,
    github_publisher: GitHubPublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Django's CursorWrapper is what a monitoring tool that patches it sees.
    from django.db.backends.utils import CursorWrapper

    def mint() -> None:
        assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))

    mint()  # the once-a-minute last-used UPDATE is out of the way
    direct = _spy_on(monkeypatch, fastsql._DirectCursor)
    wrapped = _spy_on(monkeypatch, CursorWrapper)
    writes = ["WITH"] if connection.vendor == "postgresql" else ["INSERT"] * 3
    mint()
    assert direct == ["SELECT", *writes]
    assert "SELECT" not in wrapped and "INSERT" not in wrapped
    direct.clear()
    with override_tp_settings(DIRECT_SQL=False):
        mint()
    assert direct == []
    assert [verb for verb in wrapped if verb in {"SELECT", "INSERT", "WITH"}] == [
        "SELECT",
        *writes,
    ]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_postgresql_mints_in_two_statements(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    # As in production (autocommit): the candidate SELECT, then one statement writing the
    # replay record, the token and the audit event, atomic on its own; no BEGIN/COMMIT.
    assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    with CaptureQueriesContext(connection) as captured:
        token = github_issuer.sign(github_issuer.github_claims())
        assert_minted(post_mint(client, token))
        # A replay of it: refused, and the failed statement left nothing behind.
        before = (IssuedToken.objects.count(), AuditEvent.objects.count())
    verbs = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    if connection.vendor == "postgresql":
        assert verbs[:2] == ["SELECT", "WITH"]
    else:
        assert verbs[:6] == ["SELECT", "BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]
    response = post_mint(client, token)
    assert response.status_code == 422 and response.json()["code"] == "invalid-reuse-token"
    assert (IssuedToken.objects.count(), AuditEvent.objects.count() - 1) == before
