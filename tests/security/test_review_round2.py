"""Regression tests for the second security review (findings 3, 4, 5, 7 and 8).

Each test passes on the fixed code and failed on 2bc29e5, the commit before the fixes (except
the attack rows of finding 3 and the ASCII case-insensitivity row of finding 4, which guard
against a fix that goes too far: they passed before too).

3. Git refs containing ``@`` (``refs/tags/widgets@1.2.3``) mint; the workflow / CI config
   reference is never split at its last ``@``, and look-alike references are still refused.
4. Project names are ASCII only (``re.IGNORECASE`` let ``ı``, ``ſ``, ``K`` (Kelvin) and ``İ``
   through); a Kelvin sign in a GitHub environment does not fold onto ``k``.
5. A more specific publisher that cannot mint does not hide one that can.
7. ``Content-Length: ²`` (``isdigit()`` but not ``int()``-able) is not a 500.
8. Crash reports (Django's ``ExceptionReporter``, what ``AdminEmailHandler`` mails) hold
   neither the identity token nor the minted token.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.signals import got_request_exception
from django.test import Client
from django.utils import timezone
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from tests.plugins.secrets_guard import find_leaks
from tests.providers.support import (
    MINT,
    assert_minted,
    assert_problem,
    assert_refused,
    github_publisher,
    gitlab_publisher,
    make_issuer,
    post_mint,
)
from trusted_publishing import exchange as exchange_module
from trusted_publishing import signals as tp_signals
from trusted_publishing.forms import PublisherProjectForm, clean_project_name
from trusted_publishing.models import AuditEvent, IssuedToken, Publisher
from trusted_publishing.names import is_valid_project_name
from trusted_publishing.testing import TestIssuer

BURN = "/_/oidc/burn-token"
LEGACY_MINT = "/_/oidc/github/mint-token"
SHA = "714a629c0b401fdce83e847fc9589983fc6f46bc"  # TestIssuer's sha claim
WORKFLOW = "acme/widgets/.github/workflows/release.yml"
GITLAB_HOST = "gitlab.test"  # TestIssuer("https://gitlab.test"), support.GITLAB_URL
CI_CONFIG = f"{GITLAB_HOST}/acme/widgets//.gitlab-ci.yml"


# --- 3. refs containing "@" -------------------------------------------------------------------
REFS_WITH_AT = [
    pytest.param("refs/tags/widgets@1.2.3", id="monorepo-tag"),
    pytest.param("refs/tags/@acme/widgets@1.2.3", id="scoped-monorepo-tag"),
    pytest.param("refs/heads/fix@x", id="branch"),
]


@pytest.mark.parametrize("ref", REFS_WITH_AT)
def test_github_ref_containing_an_at_sign_mints(
    github_issuer: TestIssuer, github_publisher: Any, mint: Callable[..., Any], ref: str
) -> None:
    claims = github_issuer.github_claims(ref=ref)
    assert claims["job_workflow_ref"] == f"{WORKFLOW}@{ref}"
    assert_minted(mint(github_issuer.sign(claims)))
    assert IssuedToken.objects.get().publisher_id == github_publisher.pk


@pytest.mark.parametrize("ref", REFS_WITH_AT)
def test_gitlab_ref_path_containing_an_at_sign_mints(db: Any, client: Any, ref: str) -> None:
    issuer = make_issuer("gitlab")
    publisher = gitlab_publisher(issuer)
    ref_type = "branch" if ref.startswith("refs/heads/") else "tag"
    claims = issuer.gitlab_claims(ref_path=ref, ref_type=ref_type)
    assert claims["ci_config_ref_uri"] == f"{CI_CONFIG}@{ref}"
    assert_minted(post_mint(client, issuer.sign(claims)))
    assert IssuedToken.objects.get().publisher_id == publisher.pk


GITHUB_REF_ATTACKS = {
    # The part after "@" names another ref than the run's `ref` / `sha` claims.
    "workflow-at-another-ref": {
        "ref": "refs/tags/widgets@1.2.3",
        "job_workflow_ref": f"{WORKFLOW}@refs/heads/main",
    },
    "workflow-at-a-longer-ref": {
        "ref": "refs/tags/1.2.3",
        "job_workflow_ref": f"{WORKFLOW}@refs/tags/widgets@1.2.3",
    },
    "workflow-at-a-ref-the-claim-is-a-prefix-of": {
        "ref": "refs/tags/widgets",
        "job_workflow_ref": f"{WORKFLOW}@refs/tags/widgets@1.2.3",
    },
    "workflow-at-another-ref-ending-in-the-ref": {
        "ref": "refs/tags/v1.0.0",
        "job_workflow_ref": f"{WORKFLOW}@refs/heads/main@refs/tags/v1.0.0",
    },
    # A workflow file named "release.yml@refs/tags/x" passing itself off as release.yml.
    "workflow-file-named-like-a-ref": {"workflow": "release.yml@refs/tags/x"},
    "workflow-file-named-like-a-ref-at-sha": {
        "job_workflow_ref": f"{WORKFLOW}@refs/tags/x@{SHA}",
    },
    # Look-alike repository (and look-alike workflow file) names.
    "look-alike-repository": {"repository": "acme/widgets-evil"},
    "workflow-of-a-look-alike-repository": {
        "job_workflow_ref": "acme/widgets-evil/.github/workflows/release.yml@refs/tags/v1.0.0",
    },
    "look-alike-workflow-file": {
        "job_workflow_ref": f"{WORKFLOW}-evil@refs/tags/v1.0.0",
    },
}


@pytest.mark.parametrize("overrides", GITHUB_REF_ATTACKS.values(), ids=GITHUB_REF_ATTACKS.keys())
def test_github_workflow_ref_attacks_are_refused(
    github_issuer: TestIssuer,
    github_publisher: Any,
    mint: Callable[..., Any],
    overrides: dict[str, str],
) -> None:
    claims = github_issuer.github_claims(**overrides)
    assert_refused(mint(github_issuer.sign(claims)), 422, "invalid-publisher")


GITLAB_REF_ATTACKS = {
    "config-at-another-ref": {
        "ref_path": "refs/tags/widgets@1.2.3",
        "ci_config_ref_uri": f"{CI_CONFIG}@refs/heads/main",
    },
    "config-at-a-ref-the-claim-is-a-prefix-of": {
        "ref_path": "refs/tags/widgets",
        "ci_config_ref_uri": f"{CI_CONFIG}@refs/tags/widgets@1.2.3",
    },
    "config-at-another-ref-ending-in-the-ref": {
        "ci_config_ref_uri": f"{CI_CONFIG}@refs/heads/main@refs/tags/v1.0.0",
    },
    "config-file-named-like-a-ref": {"ci_config": ".gitlab-ci.yml@refs/tags/x"},
    "look-alike-project": {"project_path": "acme/widgets-evil"},
    "config-of-a-look-alike-project": {
        "ci_config_ref_uri": f"{GITLAB_HOST}/acme/widgets-evil//.gitlab-ci.yml@refs/tags/v1.0.0",
    },
}


@pytest.mark.parametrize("overrides", GITLAB_REF_ATTACKS.values(), ids=GITLAB_REF_ATTACKS.keys())
def test_gitlab_ci_config_ref_attacks_are_refused(
    db: Any, client: Any, overrides: dict[str, str]
) -> None:
    issuer = make_issuer("gitlab")
    gitlab_publisher(issuer)
    claims = issuer.gitlab_claims(**overrides)
    assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")


# --- 4. ASCII-only project names and environments -----------------------------------------------
NON_ASCII_NAMES = [
    pytest.param("p\u0131p", id="dotless-i"),
    pytest.param("reque\u017fts", id="long-s"),
    pytest.param("\u212aelvin", id="kelvin-sign"),
    pytest.param("\u0130", id="capital-i-with-dot"),
]


@pytest.mark.parametrize("name", NON_ASCII_NAMES)
def test_non_ascii_look_alike_is_not_a_project_name(name: str) -> None:
    assert not is_valid_project_name(name)
    ascii_twin = name.encode("ascii", "ignore").decode() or "i"
    assert is_valid_project_name(ascii_twin)


def test_a_trailing_newline_is_not_part_of_a_valid_project_name() -> None:
    # The old pattern ended in "$", which also matches before a final "\n".
    assert not is_valid_project_name("widgets\n")


@pytest.mark.django_db
@pytest.mark.parametrize("name", NON_ASCII_NAMES)
def test_publisher_forms_refuse_non_ascii_project_names(name: str) -> None:
    form = PublisherProjectForm(data={"name": name})
    assert not form.is_valid()
    assert "name" in form.errors
    with pytest.raises(ValidationError):
        clean_project_name(name)


@pytest.mark.django_db
@pytest.mark.parametrize("name", NON_ASCII_NAMES)
def test_cli_add_publisher_refuses_non_ascii_project_names(name: str) -> None:
    with pytest.raises(CommandError) as info:
        call_command(
            "trusted_publishing",
            "add-publisher",
            "--provider",
            "github",
            "--repository",
            "acme/widgets",
            "--workflow",
            "release.yml",
            "--project",
            name,
            stdout=StringIO(),
        )
    assert "not a valid project name" in str(info.value)
    assert not Publisher.objects.exists()


@pytest.mark.parametrize("name", NON_ASCII_NAMES)
def test_mint_refuses_non_ascii_names_in_packages(
    github_issuer: TestIssuer, mint: Callable[..., Any], name: str
) -> None:
    # Registered for every ASCII twin: "\u212aelvin".lower() == "kelvin" minted before the fix.
    github_publisher(github_issuer, projects=("widgets", "pip", "requests", "kelvin", "i"))
    token = github_issuer.sign(github_issuer.github_claims())
    assert_refused(mint(token, packages=[name]), 422, "invalid-payload")
    token = github_issuer.sign(github_issuer.github_claims())
    assert_refused(mint(token, packages=["widgets", name]), 422, "invalid-payload")


def test_kelvin_sign_environment_does_not_match_an_ascii_k(
    github_issuer: TestIssuer, mint: Callable[..., Any]
) -> None:
    publisher = github_publisher(github_issuer, environment="pkg-release")
    claims = github_issuer.github_claims(environment="p\u212ag-release")
    assert "p\u212ag-release".lower() == "pkg-release"  # what the old comparison did
    assert_refused(mint(github_issuer.sign(claims)), 422, "invalid-publisher")
    # GitHub environment names are case-insensitive over ASCII.
    claims = github_issuer.github_claims(environment="PKG-Release")
    assert_minted(mint(github_issuer.sign(claims)))
    assert IssuedToken.objects.get().publisher_id == publisher.pk


def test_registered_kelvin_sign_environment_is_not_folded_onto_ascii(
    github_issuer: TestIssuer, mint: Callable[..., Any]
) -> None:
    publisher = github_publisher(github_issuer, environment="p\u212ag-release")
    publisher.refresh_from_db()
    claims = github_issuer.github_claims(environment="pkg-release")
    assert_refused(mint(github_issuer.sign(claims)), 422, "invalid-publisher")


# --- 5. a specific publisher that cannot mint does not hide one that can ----------------------
def test_expired_pending_publisher_does_not_hide_an_ordinary_one(
    github_issuer: TestIssuer, mint: Callable[..., Any]
) -> None:
    github_publisher(
        github_issuer,
        projects=("widgets-cli",),
        environment="pypi",
        pending_expires_at=timezone.now() - timedelta(days=1),
    )
    ordinary = github_publisher(github_issuer)
    claims = github_issuer.github_claims(environment="pypi")
    assert_minted(mint(github_issuer.sign(claims)))
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == ordinary.pk
    assert issued.projects == ["widgets"]


def test_specific_publisher_without_the_package_does_not_hide_a_general_one(
    github_issuer: TestIssuer, mint: Callable[..., Any]
) -> None:
    specific = github_publisher(github_issuer, projects=("a",), environment="release")
    general = github_publisher(github_issuer, projects=("a", "b"))

    claims = github_issuer.github_claims(environment="release")
    assert_minted(mint(github_issuer.sign(claims), packages=["b"]))
    issued = IssuedToken.objects.get()
    assert (issued.publisher_id, issued.projects) == (general.pk, ["b"])

    # The specific publisher still wins for what it covers.
    claims = github_issuer.github_claims(environment="release")
    assert_minted(mint(github_issuer.sign(claims), packages=["a"]))
    issued = IssuedToken.objects.latest("id")
    assert (issued.publisher_id, issued.projects) == (specific.pk, ["a"])


# --- 7. a Content-Length that str.isdigit() accepts and int() refuses -------------------------
UNICODE_DIGIT_LENGTHS = [
    pytest.param("\u00b2", id="superscript-two"),
    pytest.param("1\u00b2", id="one-superscript-two"),
    pytest.param("\u2074\u2070\u2079\u2076", id="superscript-4096"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", [MINT, LEGACY_MINT])
@pytest.mark.parametrize("declared", UNICODE_DIGIT_LENGTHS)
def test_unicode_digit_content_length_on_mint_is_a_problem_document(
    client: Any, path: str, declared: str
) -> None:
    assert declared.isdigit()
    with pytest.raises(ValueError):
        int(declared)
    payload = json.dumps({"token": "x"})
    response = client.post(
        path, data=payload, content_type="application/json", CONTENT_LENGTH=declared
    )
    assert 400 <= response.status_code < 500, response.content
    body = assert_problem(response, response.status_code, response.json()["code"])
    assert body["instance"] == path
    assert not IssuedToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("declared", UNICODE_DIGIT_LENGTHS)
def test_unicode_digit_content_length_on_burn_is_202(client: Any, declared: str) -> None:
    payload = json.dumps({"token": "pypi-x"})
    response = client.post(
        BURN, data=payload, content_type="application/json", CONTENT_LENGTH=declared
    )
    assert response.status_code == 202, response.content
    assert response.json() == {"message": "Accepted", "errors": []}


@pytest.mark.parametrize(("path", "expect_4xx"), [(MINT, True), (BURN, False)])
def test_unicode_digit_content_length_over_a_real_http_server(
    live_server: Any, path: str, expect_4xx: bool
) -> None:
    """The header as real bytes (0xB2, latin-1 on the wire) through Django's own WSGI server."""
    url = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "\u00b2")
        connection.putheader("Connection", "close")
        connection.endheaders()
        response = connection.getresponse()
        status, content_type, payload = (
            response.status,
            response.getheader("Content-Type", ""),
            response.read(),
        )
    finally:
        connection.close()
    if expect_4xx:
        assert 400 <= status < 500, (status, payload[:300])
        assert content_type.startswith("application/problem+json")
        assert json.loads(payload)["errors"][0]["code"]
    else:
        assert status == 202, (status, payload[:300])
        assert json.loads(payload) == {"message": "Accepted", "errors": []}


# --- 8. no secrets in crash reports --------------------------------------------------------------
MINTED_TOKEN_RE = re.compile(r"pypi-[A-Za-z0-9_-]{20,}")
SUBSTITUTE = SafeExceptionReporterFilter.cleansed_substitute


@pytest.fixture
def crash_reports() -> Iterator[list[dict[str, Any]]]:
    """The reports Django's AdminEmailHandler would mail for each request that crashed.

    Built in a ``got_request_exception`` receiver: Django's handler sends it while it handles
    the exception, so ``sys.exc_info()`` is what ``handle_uncaught_exception`` and
    ``log_response`` report (the traceback starts in Django's handler, not in this test).
    """
    reports: list[dict[str, Any]] = []

    def build(sender: Any, request: Any = None, **kwargs: Any) -> None:
        reporter = ExceptionReporter(request, *sys.exc_info(), is_email=True)
        assert type(reporter.filter) is SafeExceptionReporterFilter
        reports.append(
            {
                "text": reporter.get_traceback_text(),
                "html": reporter.get_traceback_html(),
                "functions": [frame["function"] for frame in reporter.get_traceback_frames()],
            }
        )

    got_request_exception.connect(build, weak=False)
    try:
        yield reports
    finally:
        got_request_exception.disconnect(build)


def assert_no_secrets(report: dict[str, Any], *secrets: str) -> None:
    for part in ("text", "html"):
        text = report[part]
        shown = [i for i, secret in enumerate(secrets) if secret in text]
        assert not shown, f"secret #{shown} is in the crash report's {part}"
        minted = MINTED_TOKEN_RE.findall(text)
        assert not minted, f"{len(minted)} 'pypi-' token(s) in the crash report's {part}"
        leaks = find_leaks(text)
        assert not leaks, f"the crash report's {part} holds a recorded {leaks[0]}"


def _fail_minted_audit_event(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = exchange_module.AuditEvent.objects
    create = manager.create

    def failing_create(**fields: Any) -> Any:
        if fields.get("kind") == AuditEvent.Kind.TOKEN_MINTED:
            raise RuntimeError("database went away while auditing the mint")
        return create(**fields)

    monkeypatch.setattr(manager, "create", failing_create)


def _fail_claims_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_without_nul(value: Any) -> Any:
        raise RuntimeError("snapshot of the claims failed")

    monkeypatch.setattr(exchange_module, "without_nul", failing_without_nul)


CRASH_HOOKS = {
    "audit-event-of-the-minted-token": _fail_minted_audit_event,
    "claims-snapshot-after-new-token": _fail_claims_snapshot,
}


@pytest.mark.parametrize("hook", CRASH_HOOKS.values(), ids=CRASH_HOOKS.keys())
def test_crash_report_of_a_mint_holds_neither_token(
    github_issuer: TestIssuer,
    github_publisher: Any,
    client: Any,
    crash_reports: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    hook: Callable[[pytest.MonkeyPatch], None],
) -> None:
    minted: list[str] = []
    new_token = exchange_module.new_token

    def recording_new_token() -> str:
        token = new_token()
        minted.append(token)
        return token

    monkeypatch.setattr(exchange_module, "new_token", recording_new_token)
    hook(monkeypatch)
    jwt = github_issuer.sign(github_issuer.github_claims())
    client.raise_request_exception = False

    response = post_mint(client, jwt)

    assert response.status_code == 500
    assert minted, "the crash must happen after the upload token was generated"
    assert len(crash_reports) == 1
    report = crash_reports[0]
    signature = jwt.rsplit(".", 1)[1]
    assert_no_secrets(report, jwt, signature, *minted)
    # The report is still useful: the frames are named, their variables masked.
    for function in ("post", "exchange", "_mint"):
        assert function in report["functions"]
        assert f", in {function}\n" in report["text"]
    assert "RuntimeError" in report["text"]
    assert SUBSTITUTE in report["text"]


def read_post_middleware(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Reads ``request.POST`` before the view, as CsrfViewMiddleware does for views that are not
    exempt (and many hosts' logging middleware do), so the report has a POST section to show."""

    def middleware(request: Any) -> Any:
        request.POST  # noqa: B018
        return get_response(request)

    return middleware


def test_crash_report_hides_a_form_encoded_token(
    github_issuer: TestIssuer,
    settings: Any,
    crash_reports: list[dict[str, Any]],
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.read_post_middleware"]

    def crashing_receiver(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("a host's exchange_failed receiver crashed")

    tp_signals.exchange_failed.connect(crashing_receiver, weak=False)
    try:
        jwt = github_issuer.sign(github_issuer.github_claims())
        client = Client(raise_request_exception=False)
        response = client.post(
            MINT, data=urlencode({"token": jwt}), content_type="application/x-www-form-urlencoded"
        )
    finally:
        tp_signals.exchange_failed.disconnect(crashing_receiver)

    assert response.status_code == 500
    assert len(crash_reports) == 1
    report = crash_reports[0]
    assert_no_secrets(report, jwt, jwt.rsplit(".", 1)[1])
    # The POST section lists the field, masked.
    assert f"token = '{SUBSTITUTE}'" in report["text"]
    assert "post" in report["functions"]
