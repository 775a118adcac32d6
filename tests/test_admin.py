"""The admin screens: pages, actions, permissions and query counts."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from trusted_publishing import admin as tp_admin
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    IssuedToken,
    Publisher,
    PublisherProject,
    TrustedIssuer,
)
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token

pytestmark = pytest.mark.django_db

GITHUB_URL = "https://token.actions.githubusercontent.com"


@pytest.fixture
def admin_client_(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:trusted_publishing_{name}", args=args)


def minted(
    github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any, **claims: Any
) -> tuple[str, str]:
    jwt = github_issuer.sign(github_issuer.github_claims(**claims))
    response = mint(jwt)
    assert response.status_code == 200, response.content
    return jwt, response.json()["token"]


def inline_data(names: list[str], initial: int = 0, ids: list[int] | None = None) -> dict:
    data = {
        "projects-TOTAL_FORMS": str(len(names)),
        "projects-INITIAL_FORMS": str(initial),
        "projects-MIN_NUM_FORMS": "0",
        "projects-MAX_NUM_FORMS": "1000",
    }
    for i, name in enumerate(names):
        data[f"projects-{i}-name"] = name
        if ids and i < len(ids):
            data[f"projects-{i}-id"] = str(ids[i])
    return data


# --- pages --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "trustedissuer",
        "publisher",
        "githubpublisher",
        "gitlabpublisher",
        "googlepublisher",
        "activestatepublisher",
        "issuedtoken",
        "auditevent",
    ],
)
def test_every_changelist_opens(
    admin_client_: Client, github_publisher: GitHubPublisher, name: str
) -> None:
    response = admin_client_.get(url(f"{name}_changelist"))
    assert response.status_code == 200


def test_add_github_pending_publisher(admin_client_: Client, admin_user: User) -> None:
    issuer = TrustedIssuer.objects.get(url=GITHUB_URL)
    response = admin_client_.get(url("githubpublisher_add"))
    assert response.status_code == 200
    # The public issuer is preselected.
    assert re.search(rf'<option value="{issuer.pk}" selected>', response.content.decode())
    data = {
        "issuer": issuer.pk,
        "repository_owner": "acme",
        "repository_name": "gadgets",
        "workflow_filename": "release.yml",
        "environment": "PyPI",
        "enabled": "on",
        "pending": "on",
        **inline_data(["Gadgets"]),
    }
    response = admin_client_.post(url("githubpublisher_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    publisher = GitHubPublisher.objects.get()
    assert publisher.project_names() == ["gadgets"]
    assert publisher.environment == "pypi"
    assert publisher.is_pending
    assert publisher.created_by == admin_user
    page = admin_client_.get(url("githubpublisher_changelist")).content.decode()
    assert "pending — creates project gadgets on first publish" in page
    page = admin_client_.get(url("githubpublisher_change", publisher.pk)).content.decode()
    assert "pending — creates project gadgets on first publish" in page
    assert "Bound on first publish" in page


def test_add_form_shows_pypi_workflow_error(admin_client_: Client) -> None:
    issuer = TrustedIssuer.objects.get(url=GITHUB_URL)
    data = {
        "issuer": issuer.pk,
        "repository_owner": "acme",
        "repository_name": "gadgets",
        "workflow_filename": ".github/workflows/release.yml",
        "enabled": "on",
        **inline_data(["gadgets"]),
    }
    response = admin_client_.post(url("githubpublisher_add"), data)
    assert response.status_code == 200
    assert "Workflow filename must be a filename only, without directories" in (
        response.content.decode()
    )
    assert not GitHubPublisher.objects.exists()


def test_publisher_needs_a_project(admin_client_: Client) -> None:
    issuer = TrustedIssuer.objects.get(url=GITHUB_URL)
    data = {
        "issuer": issuer.pk,
        "repository_owner": "acme",
        "repository_name": "gadgets",
        "workflow_filename": "release.yml",
        "enabled": "on",
        **inline_data([]),
    }
    response = admin_client_.post(url("githubpublisher_add"), data)
    assert response.status_code == 200
    assert "Add at least one project" in response.content.decode()


def test_project_inline_validates_names(admin_client_: Client) -> None:
    issuer = TrustedIssuer.objects.get(url=GITHUB_URL)
    data = {
        "issuer": issuer.pk,
        "repository_owner": "acme",
        "repository_name": "gadgets",
        "workflow_filename": "release.yml",
        "enabled": "on",
        **inline_data(["bad name!"]),
    }
    response = admin_client_.post(url("githubpublisher_add"), data)
    assert response.status_code == 200
    assert "is not a valid project name" in response.content.decode()


def test_change_page_shows_bound_ids_read_only(
    admin_client_: Client, github_publisher: GitHubPublisher
) -> None:
    github_publisher.repository_owner_id = "424242"
    github_publisher.save()
    page = admin_client_.get(url("githubpublisher_change", github_publisher.pk)).content.decode()
    assert "424242" in page
    assert 'name="repository_owner_id"' not in page  # read-only, not an input


def test_overview_describes_and_links_to_provider_screen(
    admin_client_: Client, github_publisher: GitHubPublisher
) -> None:
    page = admin_client_.get(url("publisher_changelist")).content.decode()
    assert "GitHub acme/widgets release.yml" in page
    assert url("githubpublisher_change", github_publisher.pk) in page
    response = admin_client_.get(url("publisher_change", github_publisher.pk))
    assert response.status_code == 302
    assert response["Location"] == url("githubpublisher_change", github_publisher.pk)
    assert admin_client_.get(url("publisher_add")).status_code == 403


def test_publisher_state_filter_and_project_filter(
    admin_client_: Client, github_publisher: GitHubPublisher
) -> None:
    issuer = github_publisher.issuer
    other = GitHubPublisher.objects.create(
        issuer=issuer,
        repository_owner="acme",
        repository_name="gizmos",
        workflow_filename="r.yml",
        enabled=False,
    )
    other.add_projects(["gizmos"])
    page = admin_client_.get(url("publisher_changelist") + "?state=disabled").content.decode()
    assert "acme/gizmos" in page and "acme/widgets" not in page
    page = admin_client_.get(url("publisher_changelist") + "?project=Widgets").content.decode()
    assert "acme/widgets" in page and "acme/gizmos" not in page


# --- actions ------------------------------------------------------------------------------------
def test_disable_action_stops_live_tokens(
    admin_client_: Client, github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    _, token = minted(github_issuer, github_publisher, mint)
    assert authenticate_upload_token(token) is not None  # now cached
    response = admin_client_.post(
        url("githubpublisher_changelist"),
        {
            "action": "disable",
            "_selected_action": [github_publisher.pk],
        },
    )
    assert response.status_code == 302
    github_publisher.refresh_from_db()
    assert not github_publisher.enabled
    assert authenticate_upload_token(token) is None
    admin_client_.post(
        url("publisher_changelist"),
        {
            "action": "enable",
            "_selected_action": [github_publisher.pk],
        },
    )
    github_publisher.refresh_from_db()
    assert github_publisher.enabled


def test_delete_confirmation_counts_live_tokens(
    admin_client_: Client, github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    minted(github_issuer, github_publisher, mint)
    minted(github_issuer, github_publisher, mint)
    page = admin_client_.get(url("githubpublisher_delete", github_publisher.pk)).content.decode()
    assert "2 live upload tokens will stop working immediately." in page
    page = admin_client_.post(
        url("publisher_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [github_publisher.pk],
        },
    ).content.decode()
    assert "2 live upload tokens" in page
    response = admin_client_.post(
        url("githubpublisher_delete", github_publisher.pk), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Publisher.objects.exists()
    assert not IssuedToken.objects.exists()


def test_revoke_action(
    admin_client_: Client,
    admin_user: User,
    github_issuer: TestIssuer,
    github_publisher: GitHubPublisher,
    mint: Any,
) -> None:
    _, token = minted(github_issuer, github_publisher, mint)
    row = IssuedToken.objects.get()
    response = admin_client_.post(
        url("issuedtoken_changelist"),
        {
            "action": "revoke",
            "_selected_action": [row.pk],
        },
        follow=True,
    )
    assert "1 token revoked." in response.content.decode()
    row.refresh_from_db()
    assert row.state == "revoked"
    assert row.revoked_reason == "revoked in admin"
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.TOKEN_REVOKED)
    assert event.actor == admin_user.get_username()
    assert authenticate_upload_token(token) is None
    # Revoking again changes nothing and says so.
    response = admin_client_.post(
        url("issuedtoken_changelist"),
        {
            "action": "revoke",
            "_selected_action": [row.pk],
        },
        follow=True,
    )
    assert "was not live" in response.content.decode()


def test_refresh_keys_action_reports_kids_or_reason(admin_client_: Client) -> None:
    static = TestIssuer("https://ghe.example.com/_services/token", kid="kid-abc")
    static_row = static.register("github", static=True)
    with override_tp_settings(JWKS_FETCH_TIMEOUT=2):
        down = TrustedIssuer.objects.create(
            url="http://127.0.0.1:9", provider="gitlab", key_source="discovery"
        )
        response = admin_client_.post(
            url("trustedissuer_changelist"),
            {
                "action": "refresh_keys",
                "_selected_action": [static_row.pk, down.pk],
            },
            follow=True,
        )
    page = response.content.decode()
    assert "Keys of https://ghe.example.com/_services/token refreshed: 1 key(s) found: kid-abc" in (
        page
    )
    assert "Keys of http://127.0.0.1:9 could not be refreshed: could not fetch" in page


def test_issuer_add_validates_static_jwks(admin_client_: Client) -> None:
    data = {
        "url": "https://ghe.example.com/_services/token",
        "provider": "github",
        "name": "GHES",
        "key_source": "static",
        "static_jwks": '{"keys": []}',
        "enabled": "on",
    }
    response = admin_client_.post(url("trustedissuer_add"), data)
    assert response.status_code == 200
    assert "non-empty" in response.content.decode()
    data["static_jwks"] = json.dumps(TestIssuer(kid="k9").jwks())
    response = admin_client_.post(url("trustedissuer_add"), data)
    assert response.status_code == 302
    page = admin_client_.get(url("trustedissuer_changelist")).content.decode()
    assert "ghe.example.com" in page


# --- tokens and events --------------------------------------------------------------------------
def test_token_filters_and_search(
    admin_client_: Client, github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    minted(github_issuer, github_publisher, mint, run_id="1111")
    minted(github_issuer, github_publisher, mint, run_id="2222")
    first = IssuedToken.objects.get(run_id="1111")
    first.revoked_at = timezone.now()
    first.save()
    changelist = url("issuedtoken_changelist")

    def ids(query: str) -> set[int]:
        response = admin_client_.get(changelist + query)
        assert response.status_code == 200
        return {obj.pk for obj in response.context["cl"].result_list}

    second = IssuedToken.objects.get(run_id="2222")
    assert ids("?state=live") == {second.pk}
    assert ids("?state=revoked") == {first.pk}
    assert ids("?state=expired") == set()
    assert ids("?q=1111") == {first.pk}
    assert ids("?q=acme/widgets") == {first.pk, second.pk}
    assert ids("?project=Widgets") == {first.pk, second.pk}
    assert ids("?project=widget") == set()
    assert ids("?publisher__provider__exact=gitlab") == set()
    assert ids("?publisher__provider__exact=github") == {first.pk, second.pk}


def test_tokens_and_events_are_view_only(
    admin_client_: Client, github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    minted(github_issuer, github_publisher, mint)
    token = IssuedToken.objects.get()
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.TOKEN_MINTED)
    assert admin_client_.get(url("issuedtoken_add")).status_code == 403
    assert admin_client_.get(url("auditevent_add")).status_code == 403
    assert admin_client_.get(url("issuedtoken_delete", token.pk)).status_code == 403
    assert admin_client_.get(url("auditevent_delete", event.pk)).status_code == 403
    page = admin_client_.get(url("issuedtoken_change", token.pk)).content.decode()
    assert 'name="_save"' not in page
    # A POST to the change page changes nothing.
    admin_client_.post(url("issuedtoken_change", token.pk), {"revoked_reason": "x"})
    token.refresh_from_db()
    assert token.revoked_reason == ""


def test_audit_event_page_shows_claims_as_a_table(
    admin_client_: Client, github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    minted(github_issuer, github_publisher, mint)
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.TOKEN_MINTED)
    page = admin_client_.get(url("auditevent_change", event.pk)).content.decode()
    assert '<table class="tp-claims">' in page
    assert "<th>repository</th><td><code>acme/widgets</code></td>" in page
    changelist = url("auditevent_changelist")
    for query, expected in [
        ("?kind__exact=token.minted", True),
        ("?kind__exact=exchange.failed", False),
        ("?outcome__exact=failure", False),
        ("?error_code=invalid-publisher", False),
        ("?q=acme", True),
        (f"?token={event.token_id}", True),
    ]:
        response = admin_client_.get(changelist + query)
        assert response.status_code == 200, query
        found = event.pk in {e.pk for e in response.context["cl"].result_list}
        assert found is expected, query


def test_failed_exchange_is_filterable_by_error_code(
    admin_client_: Client, github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    response = mint(github_issuer.sign(github_issuer.github_claims(repository="acme/other")))
    assert response.status_code == 422
    changelist = url("auditevent_changelist")
    response = admin_client_.get(changelist + "?error_code=invalid-publisher")
    events = list(response.context["cl"].result_list)
    assert [e.kind for e in events] == ["exchange.failed"]
    assert (
        "acme/other" in admin_client_.get(url("auditevent_change", events[0].pk)).content.decode()
    )


# --- permissions --------------------------------------------------------------------------------
def _staff_with(*codenames: str) -> Client:
    user = User.objects.create_user(
        "op-" + "-".join(c[:6] for c in codenames)[:100], password="x", is_staff=True
    )
    for codename in codenames:
        app_label, code = codename.split(".")
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=code).first()
        if perm is None:  # custom permission not (yet) declared in Meta: create the row
            model = code.split("_", 1)[1]
            perm = Permission.objects.create(
                codename=code,
                name=code,
                content_type=ContentType.objects.get(app_label=app_label, model=model),
            )
        user.user_permissions.add(perm)
    client = Client()
    client.force_login(user)
    return client


PUBLISHER_MANAGER = [
    f"trusted_publishing.{action}_{model}"
    for model in [
        "publisher",
        "githubpublisher",
        "gitlabpublisher",
        "googlepublisher",
        "activestatepublisher",
        "publisherproject",
    ]
    for action in ["view", "add", "change", "delete"]
] + ["trusted_publishing.view_trustedissuer"]


def test_publisher_manager_cannot_see_audit_trail(github_publisher: GitHubPublisher) -> None:
    client = _staff_with(*PUBLISHER_MANAGER)
    assert client.get(url("githubpublisher_changelist")).status_code == 200
    assert client.get(url("githubpublisher_add")).status_code == 200
    assert client.get(url("auditevent_changelist")).status_code == 403
    assert client.get(url("issuedtoken_changelist")).status_code == 403


def test_auditor_cannot_manage_publishers(github_publisher: GitHubPublisher) -> None:
    client = _staff_with("trusted_publishing.view_auditevent")
    assert client.get(url("auditevent_changelist")).status_code == 200
    assert client.get(url("githubpublisher_changelist")).status_code == 403
    assert client.get(url("githubpublisher_add")).status_code == 403
    assert client.get(url("publisher_changelist")).status_code == 403
    assert client.get(url("trustedissuer_changelist")).status_code == 403


def test_revoke_needs_its_own_permission(
    github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    minted(github_issuer, github_publisher, mint)
    token = IssuedToken.objects.get()
    viewer = _staff_with("trusted_publishing.view_issuedtoken")
    response = viewer.get(url("issuedtoken_changelist"))
    assert response.status_code == 200
    assert 'value="revoke"' not in response.content.decode()
    viewer.post(url("issuedtoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.state == "live"

    revoker = _staff_with("trusted_publishing.view_issuedtoken", tp_admin.REVOKE_PERMISSION)
    response = revoker.get(url("issuedtoken_changelist"))
    assert 'value="revoke"' in response.content.decode()
    revoker.post(
        url("issuedtoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}
    )
    token.refresh_from_db()
    assert token.state == "revoked"


# --- registration -------------------------------------------------------------------------------
def test_register_and_unregister_on_another_site() -> None:
    site = django_admin.AdminSite(name="host")
    tp_admin.register(site)
    assert site.is_registered(IssuedToken) and site.is_registered(GitHubPublisher)
    tp_admin.unregister(site)
    assert not any(site.is_registered(model) for model in tp_admin.ADMIN_CLASSES)
    assert django_admin.site.is_registered(AuditEvent)


# --- scale --------------------------------------------------------------------------------------
def seed(n: int, issuer: TrustedIssuer) -> None:
    """n GitHub publishers (one project, two tokens each) and 4n audit events, in bulk."""
    start = Publisher.objects.count()
    now = timezone.now()
    keys = [f"seed-{start + i}" for i in range(n)]
    Publisher.objects.bulk_create(
        Publisher(
            provider="github",
            issuer=issuer,
            subject=f"org/repo{start + i}",
            identity_key=key,
            enabled=i % 7 != 0,
            pending_expires_at=now + timedelta(days=1) if i % 5 == 0 else None,
        )
        for i, key in enumerate(keys)
    )
    parents = list(Publisher.objects.filter(identity_key__in=keys).order_by("pk"))
    # Multi-table children cannot be bulk_created by the ORM: insert their rows directly.
    table = GitHubPublisher._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (publisher_ptr_id, repository_owner, repository_name, "  # noqa: S608
            "workflow_filename, environment, repository_owner_id, repository_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(p.pk, "org", f"repo{p.pk}", "release.yml", "", "", "") for p in parents],
        )
    PublisherProject.objects.bulk_create(
        PublisherProject(publisher=p, name=f"project-{p.pk}") for p in parents
    )
    IssuedToken.objects.bulk_create(
        IssuedToken(
            digest=f"{p.pk:032d}{k:032d}",
            publisher=p,
            projects=[f"project-{p.pk}"],
            single_use=bool(k),
            expires_at=now + timedelta(minutes=15 if k else -15),
            issuer_url=issuer.url,
            subject=p.subject,
            run_id=str(p.pk * 10 + k),
            claims={"ref": "refs/tags/v1", "sha": "abc"},
        )
        for p in parents
        for k in range(2)
    )
    AuditEvent.objects.bulk_create(
        AuditEvent(
            kind=AuditEvent.Kind.TOKEN_MINTED if k % 2 else AuditEvent.Kind.EXCHANGE_FAILED,
            outcome="success" if k % 2 else "failure",
            error_code="" if k % 2 else "invalid-publisher",
            issuer_url=issuer.url,
            publisher=p,
            publisher_label=p.subject,
            projects=[f"project-{p.pk}"],
            claims={"repository": p.subject, "run_id": str(k)},
        )
        for p in parents
        for k in range(4)
    )


CHANGELISTS = ["publisher", "githubpublisher", "issuedtoken", "auditevent", "trustedissuer"]


def test_changelist_queries_do_not_grow_with_rows(admin_client_: Client) -> None:
    issuer = TrustedIssuer.objects.get(url=GITHUB_URL)
    seed(3, issuer)
    small: dict[str, int] = {}
    for name in CHANGELISTS:
        admin_client_.get(url(f"{name}_changelist"))  # warm up (session, content types)
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client_.get(url(f"{name}_changelist")).status_code == 200
        small[name] = len(ctx.captured_queries)
    seed(120, issuer)  # more rows than a page
    for name in CHANGELISTS:
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client_.get(url(f"{name}_changelist"))
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) > 3
        assert len(ctx.captured_queries) == small[name], (
            name,
            [q["sql"] for q in ctx.captured_queries],
        )
    # Filtered views too.
    for query in ["?state=pending", "?project=project-5", "?q=repo1"]:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client_.get(url("publisher_changelist") + query).status_code == 200
        assert len(ctx.captured_queries) <= small["publisher"] + 1


@pytest.mark.slow
def test_big_lists_stay_fast(admin_client_: Client) -> None:
    """10,000 publishers, 20,000 tokens and 100,000 events: every list renders with a bounded
    number of queries (no N+1). Timings are printed, not asserted: speed targets live in
    benchmarks/, and a loaded CI machine would make a timing assertion flaky."""
    import time

    for name in CHANGELISTS:  # warm up templates, URL resolvers and the session first
        admin_client_.get(url(f"{name}_changelist"))
    issuer = TrustedIssuer.objects.get(url=GITHUB_URL)
    seed(10_000, issuer)
    AuditEvent.objects.bulk_create(
        AuditEvent(kind="upload.authorised", outcome="success", publisher_label=f"org/r{i}")
        for i in range(60_000)
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have done in production
    for name in CHANGELISTS:
        for query in ["", "?state=live" if name == "issuedtoken" else "?q=org/repo77"]:
            if name == "trustedissuer" and query:
                continue
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as ctx:
                response = admin_client_.get(url(f"{name}_changelist") + query)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            assert len(ctx.captured_queries) < 15, name
            print(f"admin {name} changelist{query}: {elapsed * 1000:.0f} ms")
