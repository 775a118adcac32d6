"""Upload authentication for host indexes: the DRF class, the Django backend, the principal."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.contrib.auth import authenticate, get_user_model
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from trusted_publishing.authentication import UploadTokenAuthentication
from trusted_publishing.errors import UploadDenied
from trusted_publishing.exchange import revoke_token
from trusted_publishing.models import AuditEvent, GitHubPublisher, IssuedToken
from trusted_publishing.permissions import UploadTokensAccepted
from trusted_publishing.principal import PublisherPrincipal
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .providers.support import assert_minted, post_mint


class UploadView(APIView):
    """A host's upload endpoint: minted tokens first, then ordinary user passwords."""

    authentication_classes = [UploadTokenAuthentication, BasicAuthentication]
    permission_classes = [UploadTokensAccepted, IsAuthenticated]

    def post(self, request: Request) -> Response:
        user = request.user
        if isinstance(user, PublisherPrincipal):
            authorize_upload(user, "widgets", request._request)
            return Response(
                {
                    "kind": "publisher",
                    "publisher": user.publisher.pk,
                    "auth": request.auth,
                    "projects": user.projects,
                }
            )
        return Response({"kind": "user", "username": user.get_username()})


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def call(header: str | None) -> Any:
    factory = APIRequestFactory()
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    return UploadView.as_view()(factory.post("/legacy/", {}, **extra))


@pytest.fixture
def minted(client: Any, github_issuer: TestIssuer, github_publisher: GitHubPublisher) -> str:
    return assert_minted(post_mint(client, github_issuer.sign(github_issuer.github_claims())))


def test_basic_token_credentials_authenticate_the_publisher(
    minted: str, github_publisher: GitHubPublisher
) -> None:
    response = call(basic("__token__", minted))
    assert response.status_code == 200
    assert response.data == {
        "kind": "publisher",
        "publisher": github_publisher.pk,
        "auth": IssuedToken.objects.get().pk,
        "projects": ["widgets"],
    }
    assert IssuedToken.objects.get().upload_count == 1


def test_bearer_token(minted: str) -> None:
    assert call(f"Bearer {minted}").status_code == 200


@pytest.mark.parametrize("password", ["pypi-not-a-real-token", "pypi-"])
def test_unknown_prefixed_token_is_401(db: Any, password: str) -> None:
    response = call(basic("__token__", password))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="upload"'


def test_revoked_token_is_401(minted: str) -> None:
    revoke_token(IssuedToken.objects.get(), actor="ops", reason="test")
    response = call(basic("__token__", minted))
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_user_passwords_fall_through_to_the_next_class(db: Any) -> None:
    get_user_model().objects.create_user("alice", password="alice-pw")
    response = call(basic("alice", "alice-pw"))
    assert response.status_code == 200
    assert response.data == {"kind": "user", "username": "alice"}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        basic("alice", "pypi-looks-like-a-token"),
        basic("__token__", "not-our-prefix"),
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest username=x",
        "Bearer ",
    ],
)
def test_other_credentials_are_left_to_other_classes(db: Any, header: str | None) -> None:
    factory = APIRequestFactory()
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    request = Request(factory.post("/legacy/", {}, **extra))
    assert UploadTokenAuthentication().authenticate(request) is None


def test_django_backend(minted: str, github_publisher: GitHubPublisher) -> None:
    principal = authenticate(None, username="__token__", password=minted)
    assert isinstance(principal, PublisherPrincipal)
    assert principal.publisher.pk == github_publisher.pk
    assert authenticate(None, username="__token__", password="pypi-nope") is None
    assert authenticate(None, username="someone", password=minted) is None


def test_principal_is_user_like_without_permissions(minted: str) -> None:
    principal = authenticate(None, username="__token__", password=minted)
    assert isinstance(principal, PublisherPrincipal)
    publisher = principal.publisher
    assert type(publisher) is GitHubPublisher  # the provider-specific row
    assert publisher.repository == "acme/widgets"
    assert principal.claims["repository"] == "acme/widgets"
    assert principal.claims["sha"] == "714a629c0b401fdce83e847fc9589983fc6f46bc"
    assert principal.projects == ["widgets"]
    assert principal.is_authenticated and principal.is_active and not principal.is_anonymous
    assert principal.pk is None
    assert principal.username == f"trusted-publisher:{publisher.pk}"
    assert principal.get_username() == principal.username
    assert not principal.is_staff and not principal.is_superuser
    assert not principal.has_perm("trusted_publishing.add_publisher")
    assert principal.get_all_permissions() == set()
    with pytest.raises(NotImplementedError):
        principal.save()
    assert minted not in repr(principal) and minted not in str(principal)


# --- decisions survive the host's rollback ----------------------------------------------------
@pytest.mark.postgres
def test_decisions_survive_a_host_view_that_raises(
    django_db_setup: Any, django_db_blocker: Any, client: Any
) -> None:
    """A host view that lets UploadDenied (or a storage error) escape its transaction.atomic():
    the file and the token's recorded use roll back, the audit trail keeps both decisions.

    Outside Django's TestCase (whose own transaction would hide the audit connection's rows),
    on the real test database, cleaning up after itself."""
    from django.db import transaction

    from trusted_publishing.models import TrustedIssuer

    with django_db_blocker.unblock():
        issuer = TestIssuer("https://token.actions.rollback.test")
        issuer.register("github")
        publisher = GitHubPublisher.objects.create(
            issuer=TrustedIssuer.objects.get(url=issuer.url),
            repository_owner="acme",
            repository_name="widgets",
            workflow_filename="release.yml",
        )
        publisher.add_projects(["widgets"])
        try:
            raw = assert_minted(post_mint(client, issuer.sign(issuer.github_claims())))
            principal = authenticate_upload_token(raw)
            assert principal is not None

            def host_view(project: str, *, storage_fails: bool = False) -> None:
                with transaction.atomic():
                    authorize_upload(principal, project)
                    if storage_fails:
                        raise OSError("disk full")

            with pytest.raises(UploadDenied):
                host_view("not-mine")
            with pytest.raises(OSError):
                host_view("widgets", storage_fails=True)

            kinds = list(
                AuditEvent.objects.filter(kind__startswith="upload.", publisher_id=publisher.pk)
                .order_by("pk")
                .values_list("kind", "projects")
            )
            assert kinds == [("upload.denied", ["not-mine"]), ("upload.authorised", ["widgets"])]
            # The use rolled back with the file.
            assert IssuedToken.objects.get(publisher=publisher).upload_count == 0
        finally:
            AuditEvent.objects.filter(publisher_id=publisher.pk).delete()
            AuditEvent.objects.filter(issuer_url=issuer.url).delete()
            publisher.delete()
            from trusted_publishing.models import UsedIdentityToken

            UsedIdentityToken.objects.filter(issuer_url=issuer.url).delete()
            TrustedIssuer.objects.filter(url=issuer.url).delete()
