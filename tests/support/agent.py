"""A helper process that reads and writes the e2e server's database with its own settings.

The end-to-end tests must not share Django state with the server under test, so they talk to
this process (``python -m tests.support.agent``, same environment as the server) over
stdin/stdout, one JSON object per line: ``{"op": "files", "args": {...}}`` →
``{"ok": true, "result": ...}``. Management commands run in-process through ``call_command``,
so the trusted_publishing CLI is exercised exactly as an operator would use it.
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

OPS: dict[str, Callable[..., Any]] = {}


def op(func: Callable[..., Any]) -> Callable[..., Any]:
    OPS[func.__name__] = func
    return func


@op
def ping() -> str:
    return "pong"


@op
def manage(argv: list[str]) -> dict[str, Any]:
    """Run a management command; returns its stdout (parsed when it is JSON)."""
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    call_command(*argv, stdout=out, stderr=err)
    text = out.getvalue()
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    return {"stdout": text, "stderr": err.getvalue(), "json": parsed}


@op
def create_user(username: str, password: str, staff: bool = False) -> int:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username, password=password, is_staff=staff, is_superuser=staff
    )
    return user.pk


@op
def create_project(name: str) -> int:
    from example_project.index.models import Project

    return Project.objects.create(name=name, created_by="e2e").pk


@op
def project_exists(name: str) -> bool:
    from example_project.index.integration import IndexIntegration

    return IndexIntegration().project_exists(name)


@op
def files(project: str) -> list[dict[str, Any]]:
    from example_project.index.models import File
    from trusted_publishing.names import normalize_project_name

    rows = File.objects.filter(
        release__project__normalized_name=normalize_project_name(project)
    ).select_related("release")
    return [
        {
            "filename": f.filename,
            "version": f.release.version,
            "sha256": f.sha256,
            "size": f.size,
            "uploaded_by": f.uploaded_by,
            "uploaded_via_trusted_publisher": f.uploaded_via_trusted_publisher,
            "publisher_label": f.publisher_label,
            "attestations": f.attestations,
        }
        for f in rows
    ]


@op
def tokens(project: str | None = None, publisher: int | None = None) -> list[dict[str, Any]]:
    from trusted_publishing.models import IssuedToken

    rows = IssuedToken.objects.order_by("created_at")
    if publisher is not None:
        rows = rows.filter(publisher_id=publisher)
    result = [
        {
            "id": t.pk,
            "publisher": t.publisher_id,
            "projects": t.projects,
            "state": t.state,
            "single_use": t.single_use,
            "upload_count": t.upload_count,
            "revoked_reason": t.revoked_reason,
            "subject": t.subject,
        }
        for t in rows
    ]
    if project is not None:
        result = [t for t in result if project in t["projects"]]
    return result


@op
def audit(kinds: list[str] | None = None, project: str | None = None) -> list[dict[str, Any]]:
    from trusted_publishing.models import AuditEvent

    rows = AuditEvent.objects.order_by("created_at", "pk")
    if kinds:
        rows = rows.filter(kind__in=kinds)
    result = [
        {
            "kind": e.kind,
            "outcome": e.outcome,
            "error_code": e.error_code,
            "message": e.message,
            "projects": e.projects,
            "token": e.token_id,
            "publisher": e.publisher_id,
            "actor": e.actor,
        }
        for e in rows
    ]
    if project is not None:
        result = [e for e in result if project in (e["projects"] or [])]
    return result


@op
def execute(code: str) -> Any:
    """Run Python code with Django set up; the value of ``result`` is returned (JSON-able)."""
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - test support only, fed by the test suite itself
    return namespace.get("result")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    import django

    django.setup()
    from django.db import close_old_connections

    print(json.dumps({"ok": True, "result": "ready"}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            result = OPS[request["op"]](**request.get("args", {}))
            reply = {"ok": True, "result": result}
        except BaseException as exc:  # report every failure to the test, keep serving
            reply = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        finally:
            close_old_connections()
        print(json.dumps(reply, default=str), flush=True)


if __name__ == "__main__":
    main()
