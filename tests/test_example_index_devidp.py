"""The example's development identity provider: real tokens in DEBUG, nothing in production."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from django.test import RequestFactory, override_settings
from django.urls import include, path
from jwt.algorithms import RSAAlgorithm

from example_project.devidp import checks, views

ISSUER = "https://127.0.0.1:8443/_dev/idp"

# The dev IdP is mounted only in DEBUG, so these tests bring their own URLconf (this module).
urlpatterns = [path("_dev/idp/", include("example_project.devidp.urls"))]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture
def devidp(settings: Any, tmp_path: Any) -> Any:
    settings.DEBUG = True
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


def _get(view: Any, path: str, **headers: Any) -> Any:
    return view(RequestFactory().get(path, **headers))


def test_check_errors_without_debug() -> None:
    with override_settings(DEBUG=False):
        [error] = checks.check_debug_only()
    assert error.id == "devidp.E001"
    assert error.is_serious()
    with override_settings(DEBUG=True):
        assert checks.check_debug_only() == []


def test_views_refuse_without_debug(devidp: Any) -> None:
    devidp.DEBUG = False
    from django.http import Http404

    with pytest.raises(Http404):
        _get(views.discovery, "/_dev/idp/.well-known/openid-configuration")
    with pytest.raises(Http404):
        _get(views.token, "/_dev/idp/token?audience=x", HTTP_AUTHORIZATION="bearer request-me")


def test_token_request_api_signs_github_claims(devidp: Any, tmp_path: Any) -> None:
    discovery = json.loads(
        _get(views.discovery, "/_dev/idp/.well-known/openid-configuration").content
    )
    assert discovery["issuer"] == ISSUER
    jwks = json.loads(_get(views.jwks, "/_dev/idp/.well-known/jwks").content)
    [jwk] = jwks["keys"]

    denied = _get(views.token, "/_dev/idp/token?audience=idx", HTTP_AUTHORIZATION="bearer no")
    assert denied.status_code == 401

    response = _get(
        views.token,
        "/_dev/idp/token?audience=idx&repository=acme/other&environment=",
        HTTP_AUTHORIZATION="Bearer request-me",
    )
    assert response.status_code == 200
    token = json.loads(response.content)["value"]
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    claims = jwt.decode(
        token,
        RSAAlgorithm.from_jwk(json.dumps(jwk)),
        algorithms=["RS256"],
        audience="idx",
        issuer=ISSUER,
    )
    assert claims["repository"] == "acme/other"
    assert claims["job_workflow_ref"] == "acme/other/.github/workflows/release.yml@refs/tags/v1.0.0"
    assert "environment" not in claims

    # The key survives a restart (same file → same kid).
    views.load_key.cache_clear()
    again = json.loads(_get(views.jwks, "/_dev/idp/.well-known/jwks").content)
    assert again["keys"][0]["kid"] == jwk["kid"]
    assert (tmp_path / "idp" / "key.pem").stat().st_mode & 0o077 == 0
