"""Fill the database with ``n`` publishers, projects, issued tokens, replay records and audit
events, quickly (bulk inserts, no signals), so lookups run against realistically sized tables.

Publishers are multi-table-inheritance children (``Publisher`` + ``GitHubPublisher``), which
``bulk_create`` refuses: the parent rows are bulk-created (their ids come back), then the child
rows go in with one ``executemany`` per batch.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from django.db import connection, transaction
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

BATCH = 5000


def _digest(kind: str, i: int) -> str:
    return hashlib.sha256(f"{kind}-{i}".encode()).hexdigest()


def seed(issuer: TrustedIssuer, n: int) -> dict[str, float]:
    """Insert ``n`` rows into each table. Returns {"rows": n, "seconds": elapsed}."""
    started = time.perf_counter()
    now = timezone.now()
    child = GitHubPublisher._meta
    columns = [
        "publisher_ptr_id",
        "repository_owner",
        "repository_name",
        "workflow_filename",
        "environment",
        "repository_owner_id",
        "repository_id",
    ]
    qn = connection.ops.quote_name
    child_sql = (
        f"INSERT INTO {qn(child.db_table)} ({', '.join(qn(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    for first in range(0, n, BATCH):
        numbers = range(first, min(n, first + BATCH))
        with transaction.atomic():
            # Same shape as Publisher.save() computes for a GitHub publisher.
            parents = Publisher.objects.bulk_create(
                [
                    Publisher(
                        provider="github",
                        issuer=issuer,
                        subject=f"seed-org-{i // 50}/seed-repo-{i}",
                        identity_key="\x1f".join(
                            [
                                "github",
                                str(issuer.pk),
                                f"seed-org-{i // 50}/seed-repo-{i}",
                                "release.yml",
                                "",
                            ]
                        ),
                        last_used_at=now - timedelta(days=i % 365),
                    )
                    for i in numbers
                ]
            )
            with connection.cursor() as cursor:
                cursor.executemany(
                    child_sql,
                    [
                        (
                            p.pk,
                            f"seed-org-{i // 50}",
                            f"seed-repo-{i}",
                            "release.yml",
                            "",
                            str(10_000 + i // 50),
                            str(1_000_000 + i),
                        )
                        for i, p in zip(numbers, parents, strict=True)
                    ],
                )
            PublisherProject.objects.bulk_create(
                [
                    PublisherProject(publisher_id=p.pk, name=f"seed-project-{i}")
                    for i, p in zip(numbers, parents, strict=True)
                ]
            )
            # Mostly expired tokens, as on a real index: tokens live 15 minutes.
            tokens = IssuedToken.objects.bulk_create(
                [
                    IssuedToken(
                        digest=_digest("token", i),
                        publisher_id=p.pk,
                        projects=[f"seed-project-{i}"],
                        single_use=i % 2 == 0,
                        created_at=now - timedelta(minutes=i % 100_000),
                        expires_at=now - timedelta(minutes=i % 100_000) + timedelta(minutes=15),
                        issuer_url=issuer.url,
                        subject=f"seed-org-{i // 50}/seed-repo-{i}",
                        run_id=str(5_000_000 + i),
                        claims={"repository": f"seed-org-{i // 50}/seed-repo-{i}", "ref": "v1"},
                    )
                    for i, p in zip(numbers, parents, strict=True)
                ]
            )
            UsedIdentityToken.objects.bulk_create(
                [
                    UsedIdentityToken(
                        key=_digest("jti", i),
                        issuer_url=issuer.url,
                        expires_at=now + timedelta(minutes=i % 60),
                    )
                    for i in numbers
                ]
            )
            AuditEvent.objects.bulk_create(
                [
                    AuditEvent(
                        created_at=now - timedelta(minutes=i % 100_000),
                        kind=AuditEvent.Kind.TOKEN_MINTED,
                        outcome=AuditEvent.Outcome.SUCCESS,
                        message="seeded",
                        issuer_url=issuer.url,
                        publisher_id=p.pk,
                        publisher_label=f"GitHub seed-org-{i // 50}/seed-repo-{i} release.yml",
                        token_id=t.pk,
                        projects=[f"seed-project-{i}"],
                        claims={"repository": f"seed-org-{i // 50}/seed-repo-{i}"},
                    )
                    for i, p, t in zip(numbers, parents, tokens, strict=True)
                ]
            )
    # Fresh planner statistics, as autovacuum / a maintained SQLite database would have.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"rows": n, "seconds": time.perf_counter() - started}
