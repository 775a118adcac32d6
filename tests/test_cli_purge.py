"""`trusted_publishing purge`: retention of the audit trail and deletion in bounded batches."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import AuditEvent, UsedIdentityToken


def _purge(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("trusted_publishing", "purge", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def _events(days_old: int, n: int) -> None:
    when = timezone.now() - timedelta(days=days_old)
    AuditEvent.objects.bulk_create(
        AuditEvent(created_at=when, kind="token.minted", outcome="success") for _ in range(n)
    )


@pytest.mark.django_db
def test_audit_events_older_than_the_retention_setting_go() -> None:
    _events(400, 3)
    _events(10, 2)
    assert _purge()["deleted"]["audit_events"] == 3
    assert AuditEvent.objects.count() == 2
    with override_tp_settings(AUDIT_RETENTION_DAYS=5):
        assert _purge()["deleted"]["audit_events"] == 2
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_retention_none_keeps_the_audit_trail_unless_asked() -> None:
    _events(4000, 2)
    with override_tp_settings(AUDIT_RETENTION_DAYS=None):
        assert "audit_events" not in _purge()["deleted"]
        assert AuditEvent.objects.count() == 2
        assert _purge("--events-older-than", "1000")["deleted"]["audit_events"] == 2


@pytest.mark.django_db
def test_rows_are_deleted_in_batches_each_in_its_own_transaction() -> None:
    past = timezone.now() - timedelta(days=1)
    UsedIdentityToken.objects.bulk_create(
        UsedIdentityToken(key=f"{n:064x}", issuer_url="https://x.test", expires_at=past)
        for n in range(25)
    )
    with CaptureQueriesContext(connection) as queries:
        data = _purge("--batch-size", "10")
    assert data["deleted"]["used_identity_tokens"] == 25
    assert not UsedIdentityToken.objects.exists()
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    replay = [sql for sql in deletes if UsedIdentityToken._meta.db_table in sql]
    assert len(replay) == 3  # 10 + 10 + 5, never one statement for everything
    savepoints = [q for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) >= 3


@pytest.mark.django_db
def test_dry_run_counts_and_deletes_nothing() -> None:
    _events(400, 4)
    assert _purge("--dry-run")["deleted"]["audit_events"] == 4
    assert AuditEvent.objects.count() == 4
