"""Fill the database with ``n`` publishers, projects, issued tokens, replay records and audit
events, quickly, so lookups run against realistically sized tables and indexes.

The ORM is too slow for this (and ``bulk_create`` refuses multi-table-inheritance children such
as ``GitHubPublisher``), so rows go in with one ``executemany`` per table and batch, with
explicit primary keys (the sequences are reset afterwards) and values adapted once per distinct
value by the backend's own adapters. No signals fire; nothing is cached.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone

from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    IssuedToken,
    Publisher,
    PublisherProject,
    TrustedIssuer,
    UsedIdentityToken,
)

BATCH = 10_000
# Spread timestamps over a day so the time indexes are realistic without adapting n values.
SPREAD_MINUTES = 1440


class _Table:
    """``INSERT`` rows of one model: tuples of already adapted values, in ``columns`` order."""

    def __init__(self, model: type[models.Model], columns: list[str]) -> None:
        qn = connection.ops.quote_name
        names = [model._meta.get_field(c).column for c in columns]
        self.sql = (
            f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c) for c in names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))})"
        )

    def insert(self, rows: Iterable[tuple[Any, ...]]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, list(rows))


def _digest(kind: str, i: int) -> str:
    return hashlib.sha256(f"{kind}-{i}".encode()).hexdigest()


def _next_id(model: type[models.Model]) -> int:
    return (model.objects.aggregate(top=models.Max("pk"))["top"] or 0) + 1


def seed(issuer: TrustedIssuer, n: int) -> dict[str, float]:
    """Insert ``n`` rows into each table. Returns {"rows": n, "seconds": elapsed}."""
    started = time.perf_counter()
    ops = connection.ops
    now = timezone.now().replace(second=0, microsecond=0)
    # Adapted once: SPREAD_MINUTES distinct timestamps, reused by every row.
    minute = [ops.adapt_datetimefield_value(now - timedelta(minutes=m)) for m in range(1440)]
    later = [ops.adapt_datetimefield_value(now - timedelta(minutes=m - 15)) for m in range(1440)]

    def as_json(value: Any) -> Any:
        return ops.adapt_json_value(value, None)

    publisher_table = _Table(
        Publisher,
        [
            "id",
            "provider",
            "issuer",
            "subject",
            "identity_key",
            "enabled",
            "pending_expires_at",
            "created_at",
            "created_by",
            "last_used_at",
        ],
    )
    child_table = _Table(
        GitHubPublisher,
        [
            "publisher_ptr",
            "repository_owner",
            "repository_name",
            "workflow_filename",
            "environment",
            "repository_owner_id",
            "repository_id",
        ],
    )
    project_table = _Table(PublisherProject, ["id", "publisher", "name", "created_at"])
    token_table = _Table(
        IssuedToken,
        [
            "id",
            "digest",
            "publisher",
            "projects",
            "single_use",
            "created_at",
            "expires_at",
            "used_at",
            "last_used_at",
            "upload_count",
            "revoked_at",
            "revoked_reason",
            "issuer_url",
            "subject",
            "run_id",
            "claims",
        ],
    )
    replay_table = _Table(UsedIdentityToken, ["key", "issuer_url", "expires_at", "created_at"])
    event_table = _Table(
        AuditEvent,
        [
            "id",
            "created_at",
            "kind",
            "outcome",
            "error_code",
            "message",
            "issuer_url",
            "publisher",
            "publisher_label",
            "token",
            "projects",
            "claims",
            "remote_addr",
            "actor",
        ],
    )
    publisher_0, project_0 = _next_id(Publisher), _next_id(PublisherProject)
    token_0, event_0 = _next_id(IssuedToken), _next_id(AuditEvent)
    minted = AuditEvent.Kind.TOKEN_MINTED.value
    success = AuditEvent.Outcome.SUCCESS.value

    for first in range(0, n, BATCH):
        numbers = range(first, min(n, first + BATCH))
        subjects = {i: f"seed-org-{i // 50}/seed-repo-{i}" for i in numbers}
        with transaction.atomic():
            publisher_table.insert(
                # identity_key has the shape Publisher.save() computes for a GitHub publisher.
                (
                    publisher_0 + i,
                    "github",
                    issuer.pk,
                    subjects[i],
                    f"github\x1f{issuer.pk}\x1f{subjects[i]}\x1frelease.yml\x1f",
                    True,
                    None,
                    minute[i % SPREAD_MINUTES],
                    None,
                    minute[(i * 7) % SPREAD_MINUTES],
                )
                for i in numbers
            )
            child_table.insert(
                (
                    publisher_0 + i,
                    f"seed-org-{i // 50}",
                    f"seed-repo-{i}",
                    "release.yml",
                    "",
                    str(10_000 + i // 50),
                    str(1_000_000 + i),
                )
                for i in numbers
            )
            project_table.insert(
                (project_0 + i, publisher_0 + i, f"seed-project-{i}", minute[i % SPREAD_MINUTES])
                for i in numbers
            )
            # Mostly expired tokens, as on a real index: tokens live 15 minutes.
            token_table.insert(
                (
                    token_0 + i,
                    _digest("token", i),
                    publisher_0 + i,
                    as_json([f"seed-project-{i}"]),
                    i % 2 == 0,
                    minute[i % SPREAD_MINUTES],
                    later[i % SPREAD_MINUTES],
                    None,
                    None,
                    0,
                    None,
                    "",
                    issuer.url,
                    subjects[i],
                    str(5_000_000 + i),
                    as_json({"repository": subjects[i], "ref": "v1"}),
                )
                for i in numbers
            )
            replay_table.insert(
                (_digest("jti", i), issuer.url, later[i % 15], minute[i % 15]) for i in numbers
            )
            event_table.insert(
                (
                    event_0 + i,
                    minute[i % SPREAD_MINUTES],
                    minted,
                    success,
                    "",
                    "seeded",
                    issuer.url,
                    publisher_0 + i,
                    f"GitHub {subjects[i]} release.yml",
                    token_0 + i,
                    as_json([f"seed-project-{i}"]),
                    as_json({"repository": subjects[i]}),
                    None,
                    "",
                )
                for i in numbers
            )
    with connection.cursor() as cursor:
        # Explicit ids: move the sequences past them (no-op on SQLite).
        for sql in ops.sequence_reset_sql(
            no_style(), [Publisher, PublisherProject, IssuedToken, AuditEvent]
        ):
            cursor.execute(sql)
        # Fresh planner statistics, as autovacuum / a maintained SQLite database would have.
        cursor.execute("ANALYZE")
    return {"rows": n, "seconds": time.perf_counter() - started}
