"""History for the scale figures, written by the database server itself.

``seed_history`` adds what a busy index accumulates: publishers (with their GitHub rows and a
project each), issued tokens (expired within the last 6 days, so ``purge`` keeps them) and audit
events pointing at both. ``seed_purgeable`` adds what ``trusted_publishing purge`` deletes:
expired replay records and tokens expired more than 7 days ago, each token with the
``token.minted`` event that points at it (the purge keeps events and clears their link).

Every table is filled by one ``INSERT … SELECT`` over a generated series (``generate_series`` on
PostgreSQL, a recursive CTE on SQLite), with explicit ids after the existing ones; sequences are
moved past them afterwards. No signals fire and nothing is cached. Digests are SHA-256 shaped
(64 hex characters, spread over the key space as real ones are), timestamps spread over days,
JSON columns hold JSON. A column the benchmark does not know (a field added later) gets its
default, or NULL.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.color import no_style
from django.db import DatabaseError, connection, models

from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    IssuedToken,
    Publisher,
    PublisherProject,
    UsedIdentityToken,
)

MINUTES_PER_DAY = 1440


class SQL:
    """The few expressions that differ between PostgreSQL and SQLite."""

    def __init__(self) -> None:
        self.vendor = connection.vendor
        if self.vendor not in ("postgresql", "sqlite"):
            raise RuntimeError(f"seeding supports PostgreSQL and SQLite, not {self.vendor}")
        self.pg = self.vendor == "postgresql"

    def insert(self, table: str, columns: list[str], exprs: list[str], count: int) -> str:
        cols = ", ".join(connection.ops.quote_name(c) for c in columns)
        select = ", ".join(exprs)
        if self.pg:
            return (
                f"INSERT INTO {table} ({cols}) SELECT {select} "
                f"FROM generate_series(1, {count}) AS s(i)"
            )
        return (
            f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) "
            f"INSERT INTO {table} ({cols}) SELECT {select} FROM s"
        )

    def text(self, expr: str) -> str:
        return f"CAST(({expr}) AS TEXT)"

    def ago(self, minutes: str) -> str:
        """A timestamp ``minutes`` (an SQL expression) before now, as Django stores it."""
        if self.pg:
            return f"(now() - ({minutes}) * interval '1 minute')"
        return f"strftime('%Y-%m-%d %H:%M:%f', 'now', (-({minutes})) || ' minutes')"

    def digest(self, tag: str) -> str:
        if self.pg:
            return f"encode(sha256(convert_to('{tag}' || i, 'UTF8')), 'hex')"
        return "lower(hex(randomblob(32)))"

    def json_array(self, *exprs: str) -> str:
        return f"{'jsonb_build_array' if self.pg else 'json_array'}({', '.join(exprs)})"

    def json_object(self, **pairs: str) -> str:
        args = ", ".join(f"'{k}', {v}" for k, v in pairs.items())
        return f"{'jsonb_build_object' if self.pg else 'json_object'}({args})"

    def ip(self, address: str) -> str:
        return f"CAST('{address}' AS inet)" if self.pg else f"'{address}'"

    def literal(self, field: models.Field, value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        if isinstance(value, list | dict):
            import json

            return self.literal(field, json.dumps(value)) + ("::jsonb" if self.pg else "")
        raise RuntimeError(f"cannot seed {field.model.__name__}.{field.name}: add it to seed.py")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _fill(sql: SQL, model: type[models.Model], known: dict[str, str], count: int) -> None:
    """One INSERT … SELECT of ``count`` rows; ``known`` maps attnames to SQL expressions in
    ``i`` (1..count)."""
    columns, exprs = [], []
    for field in model._meta.local_concrete_fields:
        if field.attname in known:
            expr = known[field.attname]
        elif field.null:
            expr = "NULL"
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            expr = sql.ago("0")
        elif callable(field.default) and "now" in repr(field.default):
            expr = sql.ago("0")
        elif field.has_default() or field.empty_strings_allowed:
            expr = sql.literal(field, field.get_default())  # an explicit default, or ""
        else:
            raise RuntimeError(f"seed.py does not know {model.__name__}.{field.attname}")
        columns.append(field.column)
        exprs.append(expr)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.insert(connection.ops.quote_name(model._meta.db_table), columns, exprs, count)
        )


def _next_id(model: type[models.Model]) -> int:
    return model.objects.aggregate(top=models.Max("pk"))["top"] or 0


def _finish(models_with_ids: list[type[models.Model]]) -> None:
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), models_with_ids):
            cursor.execute(statement)
        # Fresh planner statistics (and, on PostgreSQL, a visibility map), as autovacuum keeps
        # them on a maintained server. VACUUM cannot run inside a transaction (a test's).
        vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
        cursor.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")
    if vacuum:
        # Write the bulk load's dirty pages out now, so the figures that follow do not share the
        # disk with the checkpoint it would otherwise trigger (needs a superuser or the
        # pg_checkpoint role; without either, the server checkpoints on its own schedule).
        try:
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
        except DatabaseError:
            pass


def seed_history(
    issuer_pk: int, issuer_url: str, *, publishers: int, tokens: int, events: int
) -> dict[str, Any]:
    started = time.perf_counter()
    sql = SQL()
    pub0, proj0 = _next_id(Publisher), _next_id(PublisherProject)
    tok0, ev0 = _next_id(IssuedToken), _next_id(AuditEvent)
    spread = 30 * MINUTES_PER_DAY
    subject = "'seed-org-' || " + sql.text("i / 50") + " || '/seed-repo-' || " + sql.text("i")
    url = _quote(issuer_url)
    _fill(
        sql,
        Publisher,
        {
            "id": f"{pub0} + i",
            "provider": "'github'",
            "issuer_id": str(issuer_pk),
            "subject": subject,
            "identity_key": f"'github|{issuer_pk}|' || {subject} || '|release.yml|'",
            "enabled": "TRUE",
            "pending_expires_at": "NULL",
            "created_at": sql.ago(f"i % {spread}"),
            "created_by_id": "NULL",
            "last_used_at": sql.ago(f"(i * 7) % {spread}"),
        },
        publishers,
    )
    _fill(
        sql,
        GitHubPublisher,
        {
            "publisher_ptr_id": f"{pub0} + i",
            "repository_owner": "'seed-org-' || " + sql.text("i / 50"),
            "repository_name": "'seed-repo-' || " + sql.text("i"),
            "workflow_filename": "'release.yml'",
            "environment": "''",
            "repository_owner_id": sql.text("10000 + i / 50"),
            "repository_id": sql.text("1000000 + i"),
        },
        publishers,
    )
    _fill(
        sql,
        PublisherProject,
        {
            "id": f"{proj0} + i",
            "publisher_id": f"{pub0} + i",
            "name": "'seed-project-' || " + sql.text("i"),
            "created_at": sql.ago(f"i % {spread}"),
        },
        publishers,
    )
    # Tokens of the last 6 days (issued, used for two files, expired 15 minutes later).
    recent = 6 * MINUTES_PER_DAY
    _fill(
        sql,
        IssuedToken,
        _token_exprs(sql, tok0, pub0, publishers, url, "h", f"i % {recent}"),
        tokens,
    )
    # Events: a minted token, its two uploads and its burn, spread over the tokens' time.
    kinds = ["token.minted", "upload.authorised", "upload.authorised", "token.burned"]
    kind = "CASE i % 4 " + " ".join(f"WHEN {n} THEN '{k}'" for n, k in enumerate(kinds)) + " END"
    token_of = f"((i - 1) / 4) % {tokens} + 1"
    _fill(
        sql,
        AuditEvent,
        _event_exprs(
            sql, ev0, pub0, tok0, publishers, url, kind, token_of, f"({token_of}) % {recent}"
        ),
        events,
    )
    _finish([Publisher, PublisherProject, IssuedToken, AuditEvent])
    return {
        "publishers": publishers,
        "tokens": tokens,
        "events": events,
        "seconds": time.perf_counter() - started,
    }


def seed_purgeable(issuer_url: str, *, replay_records: int, tokens: int) -> dict[str, Any]:
    """Rows ``purge`` deletes by default: expired replay records and tokens expired more than
    7 days ago (8-30 days), each token with the ``token.minted`` event pointing at it."""
    started = time.perf_counter()
    sql = SQL()
    url = _quote(issuer_url)
    publishers = Publisher.objects.filter(subject__startswith="seed-org-").count()
    if publishers == 0:
        raise RuntimeError("seed_history first: purgeable tokens belong to seeded publishers")
    pub0 = (
        Publisher.objects.filter(subject__startswith="seed-org-").aggregate(low=models.Min("pk"))[
            "low"
        ]
        - 1
    )
    tok0, ev0 = _next_id(IssuedToken), _next_id(AuditEvent)
    _fill(
        sql,
        UsedIdentityToken,
        {
            "key": sql.digest("r"),
            "issuer_url": url,
            # Expired 1 minute to 30 days ago (exp + leeway + margin of each identity token).
            "expires_at": sql.ago(f"1 + i % {30 * MINUTES_PER_DAY}"),
            "created_at": sql.ago(f"11 + i % {30 * MINUTES_PER_DAY}"),
        },
        replay_records,
    )
    old = f"{8 * MINUTES_PER_DAY} + i % {22 * MINUTES_PER_DAY}"
    _fill(sql, IssuedToken, _token_exprs(sql, tok0, pub0, publishers, url, "p", old), tokens)
    _fill(
        sql,
        AuditEvent,
        _event_exprs(sql, ev0, pub0, tok0, publishers, url, "'token.minted'", "i", old),
        tokens,
    )
    _finish([IssuedToken, AuditEvent])
    return {
        "replay_records": replay_records,
        "tokens": tokens,
        "events_pointing_at_them": tokens,
        "seconds": time.perf_counter() - started,
    }


def _token_exprs(
    sql: SQL, tok0: int, pub0: int, publishers: int, url: str, tag: str, minutes_ago: str
) -> dict[str, str]:
    pub = f"(i % {publishers}) + 1"
    subject = (
        "'seed-org-' || " + sql.text(f"({pub}) / 50") + " || '/seed-repo-' || " + sql.text(pub)
    )
    return {
        "id": f"{tok0} + i",
        "digest": sql.digest(tag),
        "publisher_id": f"{pub0} + {pub}",
        "projects": sql.json_array("'seed-project-' || " + sql.text(pub)),
        "single_use": "FALSE",
        "created_at": sql.ago(minutes_ago),
        "expires_at": sql.ago(f"({minutes_ago}) - 15"),
        "used_at": sql.ago(f"({minutes_ago}) - 1"),
        "last_used_at": sql.ago(f"({minutes_ago}) - 1"),
        "upload_count": "2",
        "revoked_at": "NULL",
        "revoked_reason": "''",
        "issuer_url": url,
        "subject": subject,
        "run_id": sql.text("5000000 + i"),
        "claims": sql.json_object(
            repository=subject,
            ref="'refs/tags/v1.0.0'",
            sha="'714a629c0b401fdce83e847fc9589983fc6f46bc'",
            workflow_ref=subject + " || '/.github/workflows/release.yml@refs/tags/v1.0.0'",
            event_name="'push'",
            run_id=sql.text("5000000 + i"),
        ),
    }


def _event_exprs(
    sql: SQL,
    ev0: int,
    pub0: int,
    tok0: int,
    publishers: int,
    url: str,
    kind: str,
    token_of: str,
    minutes_ago: str,
) -> dict[str, str]:
    pub = f"(({token_of}) % {publishers}) + 1"
    subject = (
        "'seed-org-' || " + sql.text(f"({pub}) / 50") + " || '/seed-repo-' || " + sql.text(pub)
    )
    return {
        "id": f"{ev0} + i",
        "created_at": sql.ago(minutes_ago),
        "kind": kind,
        "outcome": "'success'",
        "error_code": "''",
        "message": "'seeded event'",
        "issuer_url": url,
        "publisher_id": f"{pub0} + {pub}",
        "publisher_label": "'GitHub ' || " + subject + " || ' release.yml'",
        "token_id": f"{tok0} + {token_of}",
        "projects": sql.json_array("'seed-project-' || " + sql.text(pub)),
        "claims": sql.json_object(repository=subject, ref="'refs/tags/v1.0.0'"),
        "remote_addr": sql.ip("10.1.2.3"),
        "actor": "''",
    }
