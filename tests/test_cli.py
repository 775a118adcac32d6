"""``manage.py trusted_publishing``: the documented command forms, their output and errors."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from trusted_publishing.models import (
    ActiveStatePublisher,
    AuditEvent,
    GitHubPublisher,
    GitLabPublisher,
    GooglePublisher,
    IssuedToken,
    Publisher,
    TrustedIssuer,
    UsedIdentityToken,
)
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("trusted_publishing", *args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def mint_token(issuer: TestIssuer, mint: Any, **claims: Any) -> str:
    response = mint(issuer.sign(issuer.github_claims(**claims)))
    assert response.status_code == 200, response.content
    return response.json()["token"]


# --- issuers ------------------------------------------------------------------------------------
def test_add_issuer_then_pin_static_jwks(tmp_path: Path) -> None:
    url = "https://ghe.example.com/_services/token"
    out = run("add-issuer", "--provider", "github", "--url", url, "--name", "GHES")
    assert out.strip() == f"Added github issuer {url} (keys by OIDC discovery; enabled)."
    issuer = TrustedIssuer.objects.get(url=url)
    assert (issuer.provider, issuer.name, issuer.key_source) == ("github", "GHES", "discovery")

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(TestIssuer(url, kid="ghes-1").jwks()))
    data = run_json("add-issuer", "--provider", "github", "--url", url, "--jwks-file", str(jwks))
    assert data["created"] is False
    assert data["key_source"] == "static" and data["static_key_ids"] == ["ghes-1"]
    issuer.refresh_from_db()
    assert issuer.name == "GHES"  # kept when --name is not given
    assert issuer.static_jwks["keys"][0]["kid"] == "ghes-1"

    out = run("add-issuer", "--provider", "github", "--url", url, "--disable")
    assert "static keys ghes-1; DISABLED" in out
    listing = run("list-issuers")
    assert url in listing and "GHES" in listing
    rows = run_json("list-issuers", "--provider", "github")
    assert {r["url"] for r in rows} == {url, "https://token.actions.githubusercontent.com"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://gitlab.example.com"], "must use https://"),
        (
            ["--url", "https://x.example.com", "--jwks-file", "/nonexistent/jwks.json"],
            "cannot read --jwks-file",
        ),
    ],
)
def test_add_issuer_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("add-issuer", "--provider", "gitlab", *args)


def test_add_issuer_rejects_a_private_jwks(tmp_path: Path) -> None:
    import jwt

    issuer = TestIssuer(kid="k")
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer.private_key))
    private["kid"] = "k"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(CommandError) as info:
        run(
            "add-issuer",
            "--provider",
            "gitlab",
            "--url",
            "https://gitlab.example.com",
            "--jwks-file",
            str(path),
        )
    assert "private key members" in str(info.value)
    assert private["d"] not in str(info.value)
    assert not TrustedIssuer.objects.filter(url="https://gitlab.example.com").exists()


def test_refresh_keys(tmp_path: Path) -> None:
    issuer = TestIssuer("https://gitlab.example.com", kid="gl-key")
    issuer.register("gitlab", static=True)
    assert run("refresh-keys", issuer.url).strip() == (
        "https://gitlab.example.com: 1 key(s): gl-key"
    )
    assert run_json("refresh-keys", issuer.url)["key_ids"] == ["gl-key"]
    with pytest.raises(CommandError, match="not trusted: add it with `trusted_publishing add-"):
        run("refresh-keys", "https://unknown.example.com")
    TrustedIssuer.objects.create(url="http://127.0.0.1:9", provider="gitlab")
    with pytest.raises(CommandError, match="could not be refreshed: .*reach the issuer"):
        run("refresh-keys", "http://127.0.0.1:9")


# --- publishers ---------------------------------------------------------------------------------
def test_add_github_publisher_and_reuse_it() -> None:
    out = run(
        "add-publisher",
        "--provider",
        "github",
        "--repository",
        "acme/widgets",
        "--workflow",
        "release.yml",
        "--environment",
        "PyPI",
        "--project",
        "Widgets",
    )
    publisher = GitHubPublisher.objects.get()
    assert f"Added publisher #{publisher.pk}: GitHub acme/widgets release.yml [pypi]" in out
    assert "projects: widgets" in out and "state:    active" in out
    assert publisher.issuer.url == "https://token.actions.githubusercontent.com"

    data = run_json(
        "add-publisher",
        "--provider",
        "github",
        "--repository",
        "acme/widgets",
        "--workflow",
        "release.yml",
        "--environment",
        "pypi",
        "--project",
        "widgets",
        "--project",
        "Widgets_Extra",
    )
    assert data["created"] is False and data["id"] == publisher.pk
    assert data["projects"] == ["widgets", "widgets-extra"]
    assert data["projects_added"] == ["widgets-extra"]
    assert GitHubPublisher.objects.count() == 1


def test_add_pending_publisher() -> None:
    out = run(
        "add-publisher",
        "--provider",
        "github",
        "--repository",
        "acme/new",
        "--workflow",
        "release.yml",
        "--project",
        "brand-new",
        "--pending",
    )
    assert "pending — creates brand-new on first publish, until" in out
    assert GitHubPublisher.objects.get().is_pending
    # An existing project cannot get a pending publisher.
    run(
        "add-publisher",
        "--provider",
        "github",
        "--repository",
        "acme/old",
        "--workflow",
        "release.yml",
        "--project",
        "old-project",
    )
    with pytest.raises(CommandError, match="already exist: .*drop --pending"):
        run(
            "add-publisher",
            "--provider",
            "github",
            "--repository",
            "acme/other",
            "--workflow",
            "release.yml",
            "--project",
            "old-project",
            "--pending",
        )


def test_add_gitlab_google_activestate_publishers() -> None:
    run("add-issuer", "--provider", "gitlab", "--url", "https://gitlab.example.com")
    data = run_json(
        "add-publisher",
        "--provider",
        "gitlab",
        "--repository",
        "acme/platform/widgets",
        "--workflow",
        "ci/release.yml",
        "--issuer",
        "https://gitlab.example.com",
        "--project",
        "widgets",
    )
    gitlab = GitLabPublisher.objects.get()
    assert (gitlab.namespace, gitlab.project, gitlab.workflow_filepath) == (
        "acme/platform",
        "widgets",
        "ci/release.yml",
    )
    assert data["issuer"] == "https://gitlab.example.com"

    run(
        "add-publisher",
        "--provider",
        "google",
        "--email",
        "release@acme.iam.gserviceaccount.com",
        "--sub",
        "1234",
        "--project",
        "widgets",
    )
    assert GooglePublisher.objects.get().sub == "1234"

    run(
        "add-publisher",
        "--provider",
        "activestate",
        "--organization",
        "acme",
        "--activestate-project",
        "widgets",
        "--actor-id",
        "a1b2",
        "--project",
        "widgets",
    )
    assert ActiveStatePublisher.objects.get().actor_id == "a1b2"
    listing = run("list-publishers")
    for text in [
        "GitLab acme/platform/widgets ci/release.yml",
        "Google release@acme",
        "ActiveState acme/widgets (a1b2)",
    ]:
        assert text in listing
    assert len(run_json("list-publishers", "--provider", "google")) == 1
    assert len(run_json("list-publishers", "--project", "Widgets")) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "--provider",
                "github",
                "--repository",
                "acme/widgets",
                "--workflow",
                ".github/workflows/release.yml",
                "--project",
                "w",
            ],
            "Workflow filename must be a filename only, without directories",
        ),
        (
            [
                "--provider",
                "github",
                "--repository",
                "acme",
                "--workflow",
                "r.yml",
                "--project",
                "w",
            ],
            "--repository must be OWNER/REPO",
        ),
        (
            ["--provider", "github", "--repository", "acme/widgets", "--project", "w"],
            "needs --workflow",
        ),
        (
            ["--provider", "github", "--repository", "acme/widgets", "--workflow", "r.yml"],
            "at least one project",
        ),
        (
            [
                "--provider",
                "github",
                "--repository",
                "acme/widgets",
                "--workflow",
                "r.yml",
                "--project",
                "bad name",
            ],
            "not a valid project name",
        ),
        (
            [
                "--provider",
                "gitlab",
                "--repository",
                "acme/widgets",
                "--workflow",
                "ci.yml",
                "--issuer",
                "https://gitlab.example.com",
                "--project",
                "w",
            ],
            "issuer https://gitlab.example.com not trusted: add it with "
            "`trusted_publishing add-issuer` or in admin → Trusted issuers",
        ),
        (
            [
                "--provider",
                "gitlab",
                "--repository",
                "acme/widgets",
                "--workflow",
                "ci.yml",
                "--issuer",
                "https://token.actions.githubusercontent.com",
                "--project",
                "w",
            ],
            "is a github issuer; use --provider github",
        ),
        (["--provider", "google", "--email", "not-an-email", "--project", "w"], "email"),
    ],
)
def test_add_publisher_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as info:
        run("add-publisher", *args)
    assert message in str(info.value)
    assert not Publisher.objects.exists()


def test_disable_and_enable_publisher(
    github_issuer: TestIssuer, github_publisher: Any, mint: Any
) -> None:
    token = mint_token(github_issuer, mint)
    assert authenticate_upload_token(token) is not None
    out = run("disable-publisher", str(github_publisher.pk))
    assert "disabled" in out
    assert authenticate_upload_token(token) is None
    assert run_json("enable-publisher", str(github_publisher.pk))[0]["state"] == "active"
    with pytest.raises(CommandError, match="no publisher with id 999; see `trusted_publishing"):
        run("disable-publisher", "999")


# --- tokens -------------------------------------------------------------------------------------
def test_list_and_revoke_tokens(
    github_issuer: TestIssuer, github_publisher: Any, mint: Any
) -> None:
    first = mint_token(github_issuer, mint, run_id="111")
    second = mint_token(github_issuer, mint, run_id="222")
    rows = run_json("list-tokens", "--live", "--project", "Widgets")
    assert {r["run_id"] for r in rows} == {"111", "222"}
    assert run_json("list-tokens", "--project", "other") == []
    first_id = IssuedToken.objects.get(run_id="111").pk

    out = run("revoke-token", str(first_id))
    assert out.strip() == f"Revoked 1 token(s): {first_id}"
    assert authenticate_upload_token(first) is None
    event = AuditEvent.objects.get(kind="token.revoked")
    assert event.actor.startswith("cli")
    assert [r["run_id"] for r in run_json("list-tokens", "--live")] == ["222"]
    text = run("list-tokens")
    assert "revoked" in text and "live" in text

    data = run_json("revoke-token", "--publisher", str(github_publisher.pk))
    assert data["revoked"] == [IssuedToken.objects.get(run_id="222").pk]
    assert authenticate_upload_token(second) is None
    assert "already revoked" in run("revoke-token", str(first_id))
    with pytest.raises(CommandError, match="no issued token with id 4242"):
        run("revoke-token", "4242")
    with pytest.raises(CommandError, match="token ids .* or --publisher ID"):
        run("revoke-token")


# --- purge --------------------------------------------------------------------------------------
def test_purge(github_issuer: TestIssuer, github_publisher: Any, mint: Any) -> None:
    mint_token(github_issuer, mint)  # live token + a fresh replay record
    now = timezone.now()
    old = IssuedToken.objects.create(
        publisher=github_publisher,
        digest="0" * 64,
        projects=["widgets"],
        expires_at=now - timedelta(days=8),
        issuer_url=github_issuer.url,
        subject="acme/widgets",
    )
    IssuedToken.objects.create(
        publisher=github_publisher,
        digest="1" * 64,
        projects=["widgets"],
        expires_at=now - timedelta(days=2),
        issuer_url=github_issuer.url,
        subject="acme/widgets",
    )
    UsedIdentityToken.objects.create(
        key="a" * 64, issuer_url=github_issuer.url, expires_at=now - timedelta(minutes=1)
    )
    expired_pending = GitHubPublisher.objects.create(
        issuer=github_publisher.issuer,
        repository_owner="acme",
        repository_name="stale",
        workflow_filename="r.yml",
        pending_expires_at=now - timedelta(days=1),
    )
    expired_pending.add_projects(["stale"])
    AuditEvent.objects.filter(pk__in=AuditEvent.objects.values("pk")[:1]).update(
        created_at=now - timedelta(days=100)
    )

    dry = run_json("purge", "--dry-run", "--events-older-than", "90")
    assert dry["deleted"] == {
        "used_identity_tokens": 1,
        "issued_tokens": 1,
        "expired_pending_publishers": 1,
        "audit_events": 1,
    }
    assert IssuedToken.objects.filter(pk=old.pk).exists()

    out = run("purge", "--events-older-than", "90")
    assert "Deleted:" in out
    assert "1  issued tokens expired more than 7 day(s) ago" in out
    assert "1  expired pending publishers" in out
    assert not IssuedToken.objects.filter(pk=old.pk).exists()
    assert IssuedToken.objects.count() == 2
    assert not Publisher.objects.filter(pk=expired_pending.pk).exists()
    assert UsedIdentityToken.objects.count() == 1  # the live one stays
    assert run_json("purge", "--token-days", "1")["deleted"]["issued_tokens"] == 1


# --- removing publishers and projects -----------------------------------------------------------
GITHUB_ARGS = ["--provider", "github", "--repository", "acme/widgets", "--workflow", "r.yml"]


def test_add_publisher_records_the_operators_user(monkeypatch: Any) -> None:
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.create_user("alice")
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    out = run("add-publisher", *GITHUB_ARGS, "--project", "widgets")
    assert "creator:  alice" in out and "note" not in out
    assert Publisher.objects.get().created_by == alice
    assert run_json("list-publishers")[0]["created_by"] == "alice"


def test_add_publisher_with_created_by(monkeypatch: Any) -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("bob")
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    data = run_json("add-publisher", *GITHUB_ARGS, "--project", "w", "--created-by", "bob")
    assert data["created_by"] == "bob" and "created_by_note" not in data
    with pytest.raises(CommandError, match="--created-by: no user with username 'carol'"):
        run("add-publisher", *GITHUB_ARGS, "--project", "other", "--created-by", "carol")
    assert Publisher.objects.get().project_names() == ["w"]


def test_add_publisher_without_a_matching_user_leaves_created_by_empty(monkeypatch: Any) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "nobody-here")
    out = run("add-publisher", *GITHUB_ARGS, "--project", "widgets")
    assert "note:     created_by left empty: no user with username 'nobody-here'" in out
    assert Publisher.objects.get().created_by is None

    def no_login() -> str:
        raise OSError("no passwd entry")

    monkeypatch.setattr("getpass.getuser", no_login)
    data = run_json(
        "add-publisher", "--provider", "github", "--repository", "acme/other", "--workflow",
        "r.yml", "--project", "widgets",
    )  # fmt: skip
    assert data["created_by"] is None
    assert "login name is unknown" in data["created_by_note"]


def _token(publisher: Any, projects: list[str], digest: str) -> IssuedToken:
    return IssuedToken.objects.create(
        publisher=publisher,
        digest=digest * 64,
        projects=projects,
        expires_at=timezone.now() + timedelta(minutes=15),
        issuer_url=publisher.issuer.url,
        subject="acme/widgets",
    )


def test_remove_publisher(github_issuer: TestIssuer, github_publisher: Any, mint: Any) -> None:
    token = mint_token(github_issuer, mint)
    other = GitHubPublisher.objects.create(
        issuer=github_publisher.issuer,
        repository_owner="acme",
        repository_name="gadgets",
        workflow_filename="r.yml",
    )
    other.add_projects(["gadgets"])
    with pytest.raises(CommandError, match="no publisher with id 999; see `trusted_publishing"):
        run("remove-publisher", str(github_publisher.pk), "999")
    assert Publisher.objects.count() == 2  # nothing removed

    out = run("remove-publisher", str(github_publisher.pk))
    assert out.strip() == (
        f"Removed publisher #{github_publisher.pk}: GitHub acme/widgets release.yml (projects: "
        "widgets; 1 issued token(s) deleted, 1 of them live)"
    )
    assert not Publisher.objects.filter(pk=github_publisher.pk).exists()
    assert not GitHubPublisher.objects.filter(pk=github_publisher.pk).exists()
    assert not IssuedToken.objects.exists()
    assert authenticate_upload_token(token) is None
    assert AuditEvent.objects.filter(kind="token.minted", publisher=None).exists()

    data = run_json("remove-publisher", str(other.pk))
    assert [(d["id"], d["projects"], d["tokens_deleted"]) for d in data] == [
        (other.pk, ["gadgets"], 0)
    ]
    assert not Publisher.objects.exists()


def test_remove_project(github_issuer: TestIssuer, github_publisher: Any, mint: Any) -> None:
    github_publisher.add_projects(["widgets-extra", "widgets-docs"])
    both = mint_token(github_issuer, mint)  # covers every project of the publisher
    only_widgets = _token(github_publisher, ["widgets"], "a")

    out = run(
        "remove-project", "--publisher", str(github_publisher.pk), "Widgets_Extra", "widgets-docs"
    )
    assert out.strip().splitlines() == [
        f"Removed widgets-docs, widgets-extra from publisher #{github_publisher.pk}: GitHub "
        "acme/widgets release.yml",
        "  projects: widgets",
        "  revoked:  1 live token(s) covering the removed project(s)",
    ]
    assert github_publisher.project_names() == ["widgets"]
    assert authenticate_upload_token(both) is None
    only_widgets.refresh_from_db()
    assert only_widgets.state == "live"
    revoked = IssuedToken.objects.get(revoked_at__isnull=False)
    assert "was removed from the publisher" in revoked.revoked_reason

    with pytest.raises(CommandError, match="would have no project left; remove the publisher"):
        run("remove-project", "--publisher", str(github_publisher.pk), "widgets")
    with pytest.raises(CommandError) as info:
        run("remove-project", "--publisher", str(github_publisher.pk), "widgets")
    assert f"`trusted_publishing remove-publisher {github_publisher.pk}`" in str(info.value)
    with pytest.raises(CommandError, match="is not registered for nope; its projects are widgets"):
        run("remove-project", "--publisher", str(github_publisher.pk), "nope")
    with pytest.raises(CommandError, match="no publisher with id 999"):
        run("remove-project", "--publisher", "999", "widgets")

    github_publisher.add_projects(["widgets-extra"])
    data = run_json("remove-project", "--publisher", str(github_publisher.pk), "widgets-extra")
    assert data["projects"] == ["widgets"] and data["projects_removed"] == ["widgets-extra"]
    assert data["tokens_revoked"] == 0 and data["live_tokens"] == 1
