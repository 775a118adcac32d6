"""A minted upload token is an upload-only credential (permissions.py): with the app's
authentication class in DEFAULT_AUTHENTICATION_CLASSES, or on a view's own list, it
authenticates only where a view declares it accepts upload tokens."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import override_settings
from django.urls import include, path
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from trusted_publishing.models import GitHubPublisher
from trusted_publishing.permissions import UPLOAD_ONLY, UploadTokensAccepted, accepts_upload_tokens
from trusted_publishing.principal import PublisherPrincipal
from trusted_publishing.testing import TestIssuer

from .providers.support import assert_minted, post_mint

GLOBAL = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "trusted_publishing.authentication.UploadTokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}


def _views() -> list[Any]:
    """Views of a host whose settings name the app's class first in the global defaults. (DRF
    reads the defaults into APIView when it is imported: a test sets them on a base class.)"""

    class HostAPIView(APIView):
        authentication_classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
        permission_classes = api_settings.DEFAULT_PERMISSION_CLASSES

    class WhoAmI(HostAPIView):  # an unrelated endpoint of the host
        def get(self, request: Any) -> Response:
            return Response({"user": str(request.user), "is_authenticated": True})

    class UploadByPermission(HostAPIView):
        permission_classes = [UploadTokensAccepted, IsAuthenticated]

        def post(self, request: Any) -> Response:
            return Response({"principal": isinstance(request.user, PublisherPrincipal)})

    class UploadByAttribute(HostAPIView):
        accepts_upload_tokens = True

        def post(self, request: Any) -> Response:
            return Response({"principal": isinstance(request.user, PublisherPrincipal)})

    class PerViewUnrelated(APIView):  # the class listed per view, on a view that never uploads
        from trusted_publishing.authentication import UploadTokenAuthentication

        authentication_classes = [UploadTokenAuthentication, BasicAuthentication]
        permission_classes = [IsAuthenticated]

        def get(self, request: Any) -> Response:
            return Response({"user": str(request.user)})

    return [
        path("whoami", WhoAmI.as_view()),
        path("upload-perm", UploadByPermission.as_view()),
        path("upload-attr", UploadByAttribute.as_view()),
        path("per-view", PerViewUnrelated.as_view()),
    ]


@accepts_upload_tokens
def plain_upload(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username="__token__", password=request.POST["password"])
    return JsonResponse({"principal": isinstance(user, PublisherPrincipal)})


def plain_other(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username="__token__", password=request.POST["password"])
    return JsonResponse({"principal": isinstance(user, PublisherPrincipal)})


urlpatterns: list[Any] = []


@pytest.fixture
def token(client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher) -> str:
    claims = github_issuer.github_claims()
    return assert_minted(
        post_mint(client, github_issuer.sign(claims), features=["multi-use-token"])
    )


@pytest.fixture
def host_urls() -> Any:
    with override_settings(REST_FRAMEWORK=GLOBAL):
        urlpatterns[:] = [
            *_views(),
            path("plain-upload", plain_upload),
            path("plain-other", plain_other),
            path("", include("tests.urls")),
        ]
        with override_settings(ROOT_URLCONF=__name__):
            yield
    urlpatterns.clear()


def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


@pytest.mark.usefixtures("host_urls")
@pytest.mark.parametrize("url", ["/whoami", "/per-view"])
def test_an_upload_token_is_refused_on_views_that_do_not_accept_it(
    client: Any, token: str, url: str
) -> None:
    response = client.get(url, HTTP_AUTHORIZATION=_basic(token))
    assert response.status_code == 401
    assert response.json() == {"detail": UPLOAD_ONLY}
    # Bearer spelling too.
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@pytest.mark.usefixtures("host_urls")
@pytest.mark.parametrize("url", ["/upload-perm", "/upload-attr"])
def test_an_upload_token_authenticates_where_a_view_declares_it(
    client: Any, token: str, url: str
) -> None:
    response = client.post(url, HTTP_AUTHORIZATION=_basic(token))
    assert response.status_code == 200, response.content
    assert response.json() == {"principal": True}


@pytest.mark.usefixtures("host_urls")
def test_ordinary_users_are_unaffected(client: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user("alice", password="s3cret-pass")
    auth = "Basic " + base64.b64encode(b"alice:s3cret-pass").decode()
    response = client.get("/whoami", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200 and response.json()["user"] == "alice"


@pytest.mark.usefixtures("host_urls")
def test_the_auth_backend_only_authenticates_on_declared_plain_views(
    client: Any, token: str
) -> None:
    assert client.post("/plain-upload", {"password": token}).json() == {"principal": True}
    assert client.post("/plain-other", {"password": token}).json() == {"principal": False}


@pytest.mark.django_db
def test_the_admin_login_never_accepts_an_upload_token(client: Any, token: str) -> None:
    response = client.post("/admin/login/", {"username": "__token__", "password": token})
    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in client.session
