"""The benchmark's own logic, fast: what decides its exit status, and that the rows it seeds
are rows the app and its purge command understand (a model change that breaks the seeding
fails here, not minutes into a benchmark run)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command

from benchmarks import report
from benchmarks.seed import seed_history, seed_purgeable
from trusted_publishing.models import AuditEvent, IssuedToken, Publisher, UsedIdentityToken
from trusted_publishing.testing import TestIssuer


def _row(kind: str, passed: bool) -> report.Row:
    return report.Row("1", "x", value="v", target="t", passed=passed, kind=kind)


def test_quick_runs_fail_on_correctness_only() -> None:
    timing = [_row(report.TIMING, False), _row(report.CORRECTNESS, True)]
    assert report.exit_status(timing, quick=True) == 0
    assert report.exit_status(timing, quick=False) == 1
    correctness = [_row(report.TIMING, True), _row(report.CORRECTNESS, False)]
    assert report.exit_status(correctness, quick=True) == 1
    info = [report.Row("7", "information only", 1.0)]
    assert report.exit_status(info, quick=False) == 0


def test_a_crashed_run_is_a_correctness_failure() -> None:
    rows = report.build_rows({"backend": {"error": "RuntimeError: boom"}, "release": {}})
    assert report.exit_status(rows, quick=True) == 1
    assert "RuntimeError: boom" in report.render(rows)


@pytest.mark.django_db
def test_seeded_history_is_kept_and_purgeable_rows_are_purged() -> None:
    issuer = TestIssuer("https://seed.bench.test").register("github")
    history = seed_history(issuer.pk, issuer.url, publishers=60, tokens=40, events=200)
    assert history["events"] == 200
    assert Publisher.objects.filter(subject__startswith="seed-org-").count() == 60
    assert IssuedToken.objects.count() == 40
    assert AuditEvent.objects.count() == 200
    newest: Any = IssuedToken.objects.order_by("-created_at").first()
    assert newest.publisher.specific.repository_name.startswith("seed-repo-")
    assert newest.expires_at < newest.created_at.replace(year=newest.created_at.year + 1)
    assert isinstance(newest.claims, dict) and isinstance(newest.projects, list)

    seed_purgeable(issuer.url, replay_records=30, tokens=20)
    assert UsedIdentityToken.objects.count() == 30
    out = io.StringIO()
    call_command("trusted_publishing", "purge", "--json", stdout=out)
    deleted = json.loads(out.getvalue())["deleted"]
    assert deleted["used_identity_tokens"] == 30
    assert deleted["issued_tokens"] == 20  # the history's tokens (< 7 days old) are kept
    assert IssuedToken.objects.count() == 40
    assert AuditEvent.objects.count() == 220  # events are kept, their token link cleared
