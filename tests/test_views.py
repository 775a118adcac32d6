"""The HTTP surface: request bodies, features, packages, discovery, audience and burn-token."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.test import Client

from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import UploadDenied
from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    IssuedToken,
    UsedIdentityToken,
)
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import (
    MINT,
    assert_minted,
    assert_problem,
    assert_refused,
    post_mint,
)

PYTP = "application/vnd.pypi.pytp.v1+json"
DISCOVER = f"/.well-known/pytp?discover={quote_plus('/legacy/')}"


@pytest.fixture
def token(github_issuer: TestIssuer, github_publisher: GitHubPublisher) -> str:
    return github_issuer.sign(github_issuer.github_claims())


# --- malformed bodies -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b"[1, 2]", b'"token"', b"null", b"\xff\xfe", b'{"token": '],
    ids=["text", "empty", "array", "string", "null", "not-utf8", "truncated"],
)
def test_malformed_body(client: Any, db: Any, body: bytes) -> None:
    response = client.post(MINT, data=body, content_type="application/json")
    assert_refused(response, 422, "invalid-payload")


@pytest.mark.parametrize("value", [None, 42, ["a.b.c"], {"jwt": "a.b.c"}, "", "a.b", "a.b.c.d"])
def test_token_must_be_a_jwt_string(client: Any, db: Any, value: Any) -> None:
    assert_refused(post_mint(client, value), 422, "invalid-payload")


def test_oversized_body(client: Any, token: str) -> None:
    body = json.dumps({"token": token, "padding": "x" * (32 * 1024)})
    response = client.post(MINT, data=body, content_type="application/json")
    assert_refused(response, 413, "payload-too-large")


def test_body_limit_is_a_setting(client: Any, token: str) -> None:
    with override_tp_settings(MAX_REQUEST_BYTES=len(token) + 20):
        assert_refused(post_mint(client, token, padding="x" * 64), 413, "payload-too-large")
        assert_minted(post_mint(client, token))


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "", "multipart/form-data"]
)
def test_content_type_is_ignored(client: Any, token: str, content_type: str) -> None:
    response = client.generic(
        "POST", MINT, data=json.dumps({"token": token}), content_type=content_type
    )
    assert_minted(response)


def test_legacy_github_route(client: Any, token: str) -> None:
    assert_minted(post_mint(client, token, path="/_/oidc/github/mint-token"))


def test_csrf_checks_do_not_apply(token: str) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert_minted(post_mint(strict, token))
    assert strict.post("/_/oidc/burn-token", data="{}", content_type="x").status_code == 202


def _never_stored(response: Any) -> None:
    directives = {d.strip() for d in response["Cache-Control"].split(",")}
    assert {"no-store", "no-cache", "private", "max-age=0"} <= directives, directives
    assert "Expires" in response


def test_answers_carrying_or_refusing_credentials_are_never_stored(client: Any, token: str) -> None:
    minted = post_mint(client, token)
    assert_minted(minted)
    _never_stored(minted)
    refused = post_mint(client, token)  # a replay
    assert_problem(refused, 422, "invalid-reuse-token")
    _never_stored(refused)
    burned = client.post(
        "/_/oidc/burn-token",
        data=json.dumps({"token": minted.json()["token"]}),
        content_type="application/json",
    )
    assert burned.status_code == 202
    _never_stored(burned)


def test_get_is_not_allowed(client: Any, db: Any) -> None:
    response = client.get(MINT)
    assert_problem(response, 405, "invalid-payload")
    assert response["Allow"] == "POST, OPTIONS"


def test_endpoints_stay_public_behind_login_required_middleware(
    client: Any, token: str, settings: Any
) -> None:
    # Sites that require a login everywhere (Django's LoginRequiredMiddleware) must not send
    # CI jobs to a login page.
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    assert_minted(post_mint(client, token))
    assert client.get("/_/oidc/audience").status_code == 200
    assert client.get(DISCOVER, HTTP_ACCEPT=PYTP).status_code == 200
    assert (
        client.post("/_/oidc/burn-token", data=b"{}", content_type="application/json").status_code
        == 202
    )


# --- features ---------------------------------------------------------------------------------
def test_default_feature_is_a_multi_use_token(client: Any, token: str) -> None:
    assert_minted(post_mint(client, token))
    assert IssuedToken.objects.get().single_use is False


def test_single_use_feature(client: Any, token: str) -> None:
    assert_minted(post_mint(client, token, features=["single-use-token"]))
    assert IssuedToken.objects.get().single_use is True


def test_default_feature_setting(client: Any, token: str) -> None:
    with override_tp_settings(DEFAULT_FEATURE="single-use-token"):
        assert_minted(post_mint(client, token, features=[]))
    assert IssuedToken.objects.get().single_use is True


@pytest.mark.parametrize(
    "features,code",
    [
        (["macaroon"], "unsupported-feature"),
        (["single-use-token", "attestations"], "unsupported-feature"),
        (["single-use-token", "multi-use-token"], "unsupported-feature"),
        ("single-use-token", "invalid-payload"),
        ([1], "invalid-payload"),
    ],
)
def test_bad_features(client: Any, token: str, features: Any, code: str) -> None:
    assert_refused(post_mint(client, token, features=features), 422, code)
    assert_minted(post_mint(client, token))  # the identity token was not spent


# --- packages ---------------------------------------------------------------------------------
@pytest.fixture
def two_projects(github_publisher: GitHubPublisher) -> GitHubPublisher:
    github_publisher.add_projects(["widgets-extra"])
    return github_publisher


def test_no_packages_means_every_project(client: Any, token: str, two_projects: Any) -> None:
    assert_minted(post_mint(client, token))
    assert IssuedToken.objects.get().projects == ["widgets", "widgets-extra"]


def test_packages_narrow_the_token(client: Any, token: str, two_projects: Any) -> None:
    assert_minted(post_mint(client, token, packages=["Widgets_Extra"]))
    assert IssuedToken.objects.get().projects == ["widgets-extra"]


@pytest.mark.parametrize("packages", [["gadgets"], ["widgets", "gadgets"]])
def test_packages_outside_the_publisher(
    client: Any, token: str, two_projects: Any, packages: list[str]
) -> None:
    response = post_mint(client, token, packages=packages)
    body = assert_refused(response, 422, "package-not-authorised")
    assert "gadgets" in body["detail"]
    assert_minted(post_mint(client, token))


@pytest.mark.parametrize("packages", [[], "widgets", [""], [7], ["x" * 201]])
def test_malformed_packages(client: Any, token: str, packages: Any) -> None:
    assert_refused(post_mint(client, token, packages=packages), 422, "invalid-payload")


# --- discovery (PEP 807) ----------------------------------------------------------------------
def test_discovery_document(client: Any, db: Any) -> None:
    response = client.get(DISCOVER, HTTP_HOST="pkgs.example.test", secure=True)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(PYTP)
    assert response.json() == {
        "audience-endpoint": "https://pkgs.example.test/_/oidc/audience",
        "token-mint-endpoint": "https://pkgs.example.test/_/oidc/mint-token",
        "features": ["single-use-token", "multi-use-token"],
        "default-features": ["multi-use-token"],
    }


def test_discovery_follows_the_default_feature(client: Any, db: Any) -> None:
    with override_tp_settings(DEFAULT_FEATURE="single-use-token"):
        assert client.get(DISCOVER).json()["default-features"] == ["single-use-token"]


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", PYTP, "text/html, */*;q=0.1"])
def test_discovery_accept_headers(client: Any, db: Any, accept: str | None) -> None:
    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    response = client.get(DISCOVER, **headers)
    assert response.status_code == 200
    assert response.json()["token-mint-endpoint"] == "http://testserver/_/oidc/mint-token"


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "application/json;q=0"])
def test_discovery_not_acceptable(client: Any, db: Any, accept: str) -> None:
    assert_problem(client.get(DISCOVER, HTTP_ACCEPT=accept), 406, "not-acceptable")


@pytest.mark.parametrize(
    "query",
    [
        f"?discover={quote_plus('/simple/')}",
        f"?discover={quote_plus('/legacy')}",
        f"?discover={quote_plus('https://evil.test/legacy/')}",
        "?discover=",
        "",
    ],
)
def test_discovery_other_paths(client: Any, db: Any, query: str) -> None:
    assert_problem(client.get(f"/.well-known/pytp{query}"), 404, "not-found")


def test_discovery_upload_paths_setting(client: Any, db: Any) -> None:
    with override_tp_settings(UPLOAD_PATHS=["/upload/"]):
        assert client.get(DISCOVER).status_code == 404
        ok = client.get(f"/.well-known/pytp?discover={quote_plus('/upload/')}")
        assert ok.status_code == 200


# --- audience ---------------------------------------------------------------------------------
def test_audience(client: Any, db: Any) -> None:
    response = client.get("/_/oidc/audience", HTTP_ACCEPT=PYTP)
    assert response.status_code == 200
    assert response.json() == {"audience": "tests.example.internal"}


def test_disabled_index(client: Any, token: str) -> None:
    with override_tp_settings(ENABLED=False):
        assert_problem(client.get("/_/oidc/audience"), 403, "not-enabled")
        assert_refused(post_mint(client, token), 403, "not-enabled")
        assert_problem(client.get(DISCOVER), 404, "not-found")
    assert_minted(post_mint(client, token))


# --- burn-token -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"garbage", b"[]", b'{"token": 5}', b'{"token": "pypi-unknown"}', b'{"token": "abc"}', b""],
)
def test_burn_always_answers_202(client: Any, db: Any, body: bytes) -> None:
    response = client.post("/_/oidc/burn-token", data=body, content_type="application/json")
    assert response.status_code == 202
    assert response.json() == {"message": "Accepted", "errors": []}


def test_burning_a_minted_token_revokes_it(client: Any, token: str) -> None:
    minted = assert_minted(post_mint(client, token))
    principal = authenticate_upload_token(minted)
    assert principal is not None
    response = client.post(
        "/_/oidc/burn-token", data=json.dumps({"token": minted}), content_type="text/plain"
    )
    assert response.status_code == 202
    issued = IssuedToken.objects.get()
    assert issued.state == "revoked"
    assert authenticate_upload_token(minted) is None
    with pytest.raises(UploadDenied):
        authorize_upload(principal, "widgets")
    assert AuditEvent.objects.filter(kind="token.burned", token=issued).count() == 1
    # Burning again changes nothing and still answers 202.
    again = client.post("/_/oidc/burn-token", data=json.dumps({"token": minted}), content_type="")
    assert again.status_code == 202
    assert AuditEvent.objects.filter(kind="token.burned").count() == 1


def test_nothing_is_written_by_refused_exchanges(client: Any, token: str) -> None:
    assert_refused(post_mint(client, token, features=["nope"]), 422, "unsupported-feature")
    assert not UsedIdentityToken.objects.exists()
