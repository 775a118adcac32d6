"""trusted_publishing.contrib.devidp: real tokens in DEBUG, nothing in production."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import jwt
import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.test import RequestFactory, modify_settings, override_settings
from jwt.algorithms import RSAAlgorithm

from trusted_publishing.contrib.devidp import checks, keys, views
from trusted_publishing.models import GitHubPublisher, GitLabPublisher, KeySource, TrustedIssuer

APP = "trusted_publishing.contrib.devidp"
URLS = "trusted_publishing.contrib.devidp.urls"
ISSUER = "https://127.0.0.1:8443/_dev/idp"
GITLAB_ISSUER = f"{ISSUER}/gitlab"


@pytest.fixture
def devidp(settings: Any, tmp_path: Any) -> Any:
    settings.DEBUG = True
    settings.ROOT_URLCONF = "tests.contrib.devidp_urls"
    settings.DEVIDP = {
        "ISSUER": ISSUER,
        "REQUEST_TOKEN": "request-me",
        "KEY_FILE": str(tmp_path / "idp" / "key.pem"),
        "CLAIMS": {
            "repository": "acme/widgets",
            "workflow": "release.yml",
            "environment": "pypi",
            "ref": "refs/tags/v1.0.0",
            "event_name": "push",
        },
    }
    return settings


def _json(client: Any, path: str, **headers: Any) -> Any:
    response = client.get(path, **headers)
    assert response.status_code == 200, response.content
    return response.json()


def _token(client: Any, path: str) -> str:
    return _json(client, path, HTTP_AUTHORIZATION="Bearer request-me")["value"]


def _verify(token: str, jwk: dict[str, Any], audience: str, issuer: str) -> dict[str, Any]:
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    key = RSAAlgorithm.from_jwk(json.dumps(jwk))
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer)


# --- never in production ----------------------------------------------------------------------
def test_check_errors_without_debug() -> None:
    with modify_settings(INSTALLED_APPS={"append": APP}):
        with override_settings(DEBUG=False):
            [error] = checks.check_debug_only()
            assert error.id in {m.id for m in run_checks(tags=["security"])}
        assert error.id == "trusted_publishing.devidp.E001"
        assert error.is_serious()
        with override_settings(DEBUG=True):
            assert checks.check_debug_only() == []
    # Registered for good once loaded, but silent when the app is not installed.
    with override_settings(DEBUG=False):
        assert checks.check_debug_only() == []


def test_check_wants_a_key_file(settings: Any) -> None:
    settings.DEBUG = True
    settings.DEVIDP = {}
    with modify_settings(INSTALLED_APPS={"append": APP}):
        [error] = checks.check_key_file()
        assert error.id == "trusted_publishing.devidp.E002"
        settings.DEVIDP = {"KEY_FILE": "/somewhere/key.pem"}
        assert checks.check_key_file() == []


def test_urlconf_refuses_to_load_without_debug() -> None:
    saved = sys.modules.pop(URLS, None)
    try:
        with override_settings(DEBUG=False), pytest.raises(ImproperlyConfigured, match="DEBUG"):
            importlib.import_module(URLS)
        assert URLS not in sys.modules
        # A production URLconf that includes it fails when it is loaded, not on some request.
        sys.modules.pop("tests.contrib.devidp_urls", None)
        with override_settings(DEBUG=False), pytest.raises(ImproperlyConfigured):
            importlib.import_module("tests.contrib.devidp_urls")
        with override_settings(DEBUG=True):
            assert importlib.import_module(URLS).app_name == "devidp"
    finally:
        sys.modules.pop("tests.contrib.devidp_urls", None)
        if saved is not None:
            sys.modules[URLS] = saved


def test_views_refuse_without_debug(devidp: Any) -> None:
    devidp.DEBUG = False
    for view in (views.discovery, views.jwks, views.gitlab_discovery, views.about):
        with pytest.raises(Http404):
            view(RequestFactory().get("/_dev/idp/"))
    for view in (views.token, views.gitlab_token):
        request = RequestFactory().get("/_dev/idp/token?audience=x", HTTP_AUTHORIZATION="bearer x")
        with pytest.raises(Http404):
            view(request)


# --- GitHub Actions -----------------------------------------------------------------------------
def test_token_request_api_signs_github_claims(devidp: Any, client: Any, tmp_path: Any) -> None:
    discovery = _json(client, "/_dev/idp/.well-known/openid-configuration")
    assert discovery["issuer"] == ISSUER
    assert discovery["jwks_uri"] == "http://testserver/_dev/idp/.well-known/jwks"
    [jwk] = _json(client, "/_dev/idp/.well-known/jwks")["keys"]

    denied = client.get("/_dev/idp/token?audience=idx", HTTP_AUTHORIZATION="bearer no")
    assert denied.status_code == 401
    assert client.get("/_dev/idp/token", HTTP_AUTHORIZATION="bearer request-me").status_code == 400

    token = _token(client, "/_dev/idp/token?audience=idx&repository=acme/other&environment=")
    claims = _verify(token, jwk, "idx", ISSUER)
    assert claims["repository"] == "acme/other"
    assert claims["job_workflow_ref"] == "acme/other/.github/workflows/release.yml@refs/tags/v1.0.0"
    assert "environment" not in claims
    assert _verify(_token(client, "/_dev/idp/token?audience=idx"), jwk, "idx", ISSUER)[
        "environment"
    ] == "pypi"

    # The key survives a restart (same file → same kid), and only its owner can read it.
    keys.load_key.cache_clear()
    again = _json(client, "/_dev/idp/.well-known/jwks")
    assert again["keys"][0]["kid"] == jwk["kid"]
    assert (tmp_path / "idp" / "key.pem").stat().st_mode & 0o077 == 0


def test_the_issuer_defaults_to_the_mount_point(devidp: Any, client: Any) -> None:
    devidp.DEVIDP = {**devidp.DEVIDP, "ISSUER": ""}
    assert _json(client, "/_dev/idp/.well-known/openid-configuration")["issuer"] == (
        "http://testserver/_dev/idp"
    )
    assert _json(client, "/_dev/idp/gitlab/.well-known/openid-configuration")["issuer"] == (
        "http://testserver/_dev/idp/gitlab"
    )
    about = client.get("/_dev/idp/").content.decode()
    assert "ACTIONS_ID_TOKEN_REQUEST_URL=http://testserver/_dev/idp/token" in about


def _static_issuer(client: Any, url: str, provider: str, jwks_path: str) -> TrustedIssuer:
    return TrustedIssuer.objects.create(
        url=url,
        provider=provider,
        name=f"devidp {provider}",
        key_source=KeySource.STATIC,
        static_jwks=_json(client, jwks_path),
    )


@pytest.mark.django_db
def test_the_index_mints_for_a_github_token(devidp: Any, client: Any, mint: Any) -> None:
    issuer = _static_issuer(client, ISSUER, "github", "/_dev/idp/.well-known/jwks")
    publisher = GitHubPublisher.objects.create(
        issuer=issuer,
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
        environment="pypi",
    )
    publisher.add_projects(["widgets"])
    audience = _json(client, "/_/oidc/audience")["audience"]

    response = mint(_token(client, f"/_dev/idp/token?audience={audience}"))

    assert response.status_code == 200, response.content
    assert response.json()["token"].startswith("pypi-")


# --- GitLab CI/CD -----------------------------------------------------------------------------
def test_gitlab_issuer_signs_gitlab_claims(devidp: Any, client: Any) -> None:
    discovery = _json(client, "/_dev/idp/gitlab/.well-known/openid-configuration")
    assert discovery["issuer"] == GITLAB_ISSUER
    assert discovery["jwks_uri"] == "http://testserver/_dev/idp/gitlab/.well-known/jwks"
    [jwk] = _json(client, "/_dev/idp/gitlab/.well-known/jwks")["keys"]
    assert client.get("/_dev/idp/gitlab/token?audience=idx").status_code == 401

    token = _token(
        client, "/_dev/idp/gitlab/token?audience=idx&project_path=acme/tools/kit&ci_config=ci/r.yml"
    )
    claims = _verify(token, jwk, "idx", GITLAB_ISSUER)
    assert claims["project_path"] == "acme/tools/kit"
    assert claims["namespace_path"] == "acme/tools"
    assert claims["ci_config_ref_uri"] == (
        "127.0.0.1:8443/_dev/idp/gitlab/acme/tools/kit//ci/r.yml@refs/tags/v1.0.0"
    )
    assert claims["sub"] == "project_path:acme/tools/kit:ref_type:tag:ref:v1.0.0"
    assert claims["environment"] == "pypi"  # from CLAIMS, like the GitHub job
    assert "repository" not in claims

    gitlab_job = {"project_path": "acme/lab", "environment": ""}
    devidp.DEVIDP = {**devidp.DEVIDP, "GITLAB_CLAIMS": gitlab_job}
    token = _token(client, "/_dev/idp/gitlab/token?audience=idx")
    claims = _verify(token, jwk, "idx", GITLAB_ISSUER)
    assert (claims["project_path"], "environment" in claims) == ("acme/lab", False)


@pytest.mark.django_db
def test_the_index_mints_for_a_gitlab_token(devidp: Any, client: Any, mint: Any) -> None:
    issuer = _static_issuer(client, GITLAB_ISSUER, "gitlab", "/_dev/idp/gitlab/.well-known/jwks")
    publisher = GitLabPublisher.objects.create(
        issuer=issuer, namespace="acme", project="widgets", workflow_filepath=".gitlab-ci.yml"
    )
    publisher.add_projects(["widgets"])
    audience = _json(client, "/_/oidc/audience")["audience"]

    response = mint(_token(client, f"/_dev/idp/gitlab/token?audience={audience}"))

    assert response.status_code == 200, response.content
    publisher.refresh_from_db()
    assert publisher.project_id  # bound from the token's stable fake id
