"""The audit trail and the integrator signals: every outcome is recorded, without secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.dispatch import Signal
from django.utils import timezone

from trusted_publishing import signals
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import UploadDenied
from trusted_publishing.exchange import revoke_token
from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    IssuedToken,
    Publisher,
    TrustedIssuer,
)
from trusted_publishing.principal import PublisherPrincipal
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import MINT, assert_minted, assert_problem, post_mint

SIGNALS = {
    "token_minted": signals.token_minted,
    "exchange_failed": signals.exchange_failed,
    "upload_authorised": signals.upload_authorised,
    "upload_denied": signals.upload_denied,
    "token_revoked": signals.token_revoked,
    "publisher_reified": signals.publisher_reified,
}


@pytest.fixture
def received() -> Iterator[dict[str, list[dict[str, Any]]]]:
    log: dict[str, list[dict[str, Any]]] = {name: [] for name in SIGNALS}
    handlers = []
    for name, signal in SIGNALS.items():

        def handler(sender: Any, signal: Signal, _name: str = name, **kwargs: Any) -> None:
            log[_name].append({"sender": sender, **kwargs})

        signal.connect(handler, weak=False)
        handlers.append((signal, handler))
    yield log
    for signal, handler in handlers:
        signal.disconnect(handler)


def no_secrets(event: AuditEvent, *secrets: str) -> None:
    dumped = json.dumps(
        {f.attname: str(getattr(event, f.attname)) for f in AuditEvent._meta.concrete_fields}
    )
    for secret in secrets:
        assert secret not in dumped


# --- exchanges --------------------------------------------------------------------------------
def test_successful_exchange_is_recorded_and_signalled(
    client: Any,
    github_issuer: TestIssuer,
    github_publisher: GitHubPublisher,
    received: dict[str, list[dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    jwt = github_issuer.sign(github_issuer.github_claims(run_id="31337"))
    with django_capture_on_commit_callbacks(execute=True):
        minted = assert_minted(post_mint(client, jwt))
    event = AuditEvent.objects.get()
    issued = IssuedToken.objects.get()
    assert (event.kind, event.outcome, event.error_code) == ("token.minted", "success", "")
    assert event.token_id == issued.pk and event.publisher_id == github_publisher.pk
    assert event.publisher_label == "GitHub acme/widgets release.yml"
    assert event.projects == ["widgets"]
    assert event.issuer_url == github_issuer.url
    assert event.remote_addr == "127.0.0.1"
    assert event.claims["repository"] == "acme/widgets"
    assert event.claims["run_id"] == "31337"
    no_secrets(event, jwt, minted, minted.removeprefix("pypi-"))

    (sent,) = received["token_minted"]
    assert sent["token"].pk == issued.pk
    assert sent["publisher"].pk == github_publisher.pk
    assert sent["claims"]["sha"] == issued.claims["sha"]
    assert sent["request"] is not None and sent["request"].path == MINT
    assert received["exchange_failed"] == []


def _disable_issuer(issuer: TestIssuer) -> None:
    row = TrustedIssuer.objects.get(url=issuer.url)
    row.enabled = False
    row.save()


def _make_pending_expired(publisher: GitHubPublisher) -> None:
    Publisher.objects.filter(pk=publisher.pk).update(
        pending_expires_at=timezone.now() - timedelta(days=1)
    )


FAILURES = [
    # (id, status, code, prepare(issuer, publisher), claims overrides, body extras, has claims)
    ("malformed-jwt", 422, "invalid-payload", None, None, {"token": "a.b.c"}, False),
    ("bad-audience", 422, "invalid-token", None, {"aud": "pypi"}, {}, False),
    ("unknown-issuer", 422, "unknown-issuer", None, {"iss": "https://evil.test"}, {}, False),
    ("disabled-issuer", 403, "not-enabled", _disable_issuer, None, {}, False),
    ("no-publisher", 422, "invalid-publisher", None, {"repository": "acme/other"}, {}, True),
    ("bad-feature", 422, "unsupported-feature", None, None, {"features": ["x"]}, False),
    ("bad-package", 422, "package-not-authorised", None, None, {"packages": ["other"]}, True),
    ("expired-pending", 422, "invalid-pending-publisher", "pending", None, {}, True),
]


@pytest.mark.parametrize(
    "status,code,prepare,overrides,extra,has_claims",
    [f[1:] for f in FAILURES],
    ids=[f[0] for f in FAILURES],
)
def test_each_failure_kind_is_recorded_and_signalled(
    client: Any,
    github_issuer: TestIssuer,
    github_publisher: GitHubPublisher,
    received: dict[str, list[dict[str, Any]]],
    status: int,
    code: str,
    prepare: Any,
    overrides: dict[str, Any] | None,
    extra: dict[str, Any],
    has_claims: bool,
) -> None:
    if prepare == "pending":
        _make_pending_expired(github_publisher)
    elif prepare is not None:
        prepare(github_issuer)
    jwt = github_issuer.sign({**github_issuer.github_claims(), **(overrides or {})})
    body = {"token": jwt, **extra}
    response = client.post(MINT, data=json.dumps(body), content_type="application/json")
    assert_problem(response, status, code)

    event = AuditEvent.objects.get()
    assert (event.kind, event.outcome, event.error_code) == ("exchange.failed", "failure", code)
    assert event.message == response.json()["detail"]
    no_secrets(event, jwt)
    if has_claims:
        assert event.claims["repository_owner_id"] == "1001"
        assert event.claims["iss"] == github_issuer.url
        assert "jti" not in event.claims
    (sent,) = received["exchange_failed"]
    assert sent["code"] == code
    assert sent["description"] == event.message
    assert sent["claims"] == event.claims
    assert sent["request"].path == MINT
    assert received["token_minted"] == []


def test_replay_is_recorded(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    jwt = github_issuer.sign(github_issuer.github_claims())
    assert_minted(post_mint(client, jwt))
    assert_problem(post_mint(client, jwt), 422, "invalid-reuse-token")
    event = AuditEvent.objects.get(kind="exchange.failed")
    assert event.error_code == "invalid-reuse-token"
    assert event.publisher_id == github_publisher.pk
    assert event.claims["repository"] == "acme/widgets"


def test_disabled_index_is_recorded(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> None:
    with override_tp_settings(ENABLED=False):
        assert_problem(
            post_mint(client, github_issuer.sign(github_issuer.github_claims())),
            403,
            "not-enabled",
        )
    assert AuditEvent.objects.get().error_code == "not-enabled"


@pytest.mark.parametrize("body", [b"not json", b"{" + b" " * 40000 + b"}"], ids=["json", "size"])
def test_body_level_refusals_are_recorded(client: Any, db: Any, body: bytes) -> None:
    response = client.post(MINT, data=body, content_type="application/json")
    assert response.status_code in (413, 422)
    assert AuditEvent.objects.filter(kind="exchange.failed").count() == 1


# --- uploads and revocation ---------------------------------------------------------------------
@pytest.fixture
def principal(
    client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher
) -> PublisherPrincipal:
    minted = assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))
    found = authenticate_upload_token(minted)
    assert found is not None
    AuditEvent.objects.all().delete()
    return found


def test_authorised_upload_is_recorded_and_signalled(
    principal: PublisherPrincipal, received: dict[str, list[dict[str, Any]]], rf: Any
) -> None:
    request = rf.post("/legacy/", REMOTE_ADDR="198.51.100.7")
    authorize_upload(principal, "Widgets", request)
    event = AuditEvent.objects.get()
    assert (event.kind, event.outcome) == ("upload.authorised", "success")
    assert event.token_id == principal.token_id
    assert event.publisher_id == principal.publisher.pk
    assert event.projects == ["widgets"]
    assert event.remote_addr == "198.51.100.7"
    (sent,) = received["upload_authorised"]
    assert sent["principal"] is principal
    assert sent["project"] == "widgets"
    assert sent["request"] is request


def test_denied_upload_is_recorded_and_signalled(
    principal: PublisherPrincipal, received: dict[str, list[dict[str, Any]]]
) -> None:
    with pytest.raises(UploadDenied) as denied:
        authorize_upload(principal, "gadgets")
    event = AuditEvent.objects.get()
    assert (event.kind, event.outcome, event.error_code) == (
        "upload.denied",
        "failure",
        "upload-denied",
    )
    assert event.message == denied.value.reason
    assert event.projects == ["gadgets"]
    (sent,) = received["upload_denied"]
    assert sent["principal"] is principal
    assert sent["project"] == "gadgets"
    assert sent["reason"] == denied.value.reason
    assert sent["request"] is None
    assert received["upload_authorised"] == []


def test_revocation_is_recorded_and_signalled(
    principal: PublisherPrincipal, received: dict[str, list[dict[str, Any]]]
) -> None:
    token = IssuedToken.objects.get()
    revoke_token(token, actor="ops@example.com", reason="rotated")
    event = AuditEvent.objects.get()
    assert (event.kind, event.outcome) == ("token.revoked", "success")
    assert event.actor == "ops@example.com" and event.message == "rotated"
    assert event.token_id == token.pk
    (sent,) = received["token_revoked"]
    assert sent["token"].pk == token.pk
    assert (sent["actor"], sent["reason"]) == ("ops@example.com", "rotated")
