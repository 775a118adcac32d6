"""No admin page and no CLI output may contain a minted token, an identity token or a digest."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from trusted_publishing.admin import ADMIN_CLASSES
from trusted_publishing.models import GitHubPublisher, IssuedToken
from trusted_publishing.testing import TestIssuer

pytestmark = pytest.mark.django_db


def _secrets_for(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def test_no_page_or_cli_output_shows_a_secret(
    admin_user: User, github_issuer: TestIssuer, github_publisher: GitHubPublisher, mint: Any
) -> None:
    secrets: list[str] = []
    # Successful mints: one multi-use, one single-use (the latter then used up and revoked).
    for features in (None, ["single-use-token"]):
        jwt = github_issuer.sign(github_issuer.github_claims(environment="pypi"))
        extra = {"features": features} if features else {}
        response = mint(jwt, **extra)
        assert response.status_code == 200, response.content
        token = response.json()["token"]
        secrets += [jwt, jwt.rsplit(".", 1)[1], token, token.removeprefix("pypi-")]
    # A failed exchange (its claims are recorded in the audit trail, the JWT must not be).
    bad = github_issuer.sign(github_issuer.github_claims(repository="acme/other"))
    assert mint(bad).status_code == 422
    secrets += [bad, bad.rsplit(".", 1)[1]]
    # A replayed JWT and a burned token.
    assert mint(jwt).status_code == 422
    burn = mint(github_issuer.sign(github_issuer.github_claims())).json()["token"]
    secrets.append(burn)
    client = Client()
    assert (
        client.post(
            "/_/oidc/burn-token", data=json.dumps({"token": burn}), content_type="application/json"
        ).status_code
        == 202
    )
    secrets += list(IssuedToken.objects.values_list("digest", flat=True))
    assert len(secrets) > 10

    client.force_login(admin_user)
    pages = 0
    for model, _admin in ADMIN_CLASSES.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = client.get(changelist)
        assert response.status_code == 200
        assert not _secrets_for(response.content.decode(), secrets), changelist
        pages += 1
        for pk in model.objects.values_list("pk", flat=True):
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
            response = client.get(change, follow=True)
            assert response.status_code == 200, change
            assert not _secrets_for(response.content.decode(), secrets), change
            pages += 1
    assert pages > 15

    outputs = []
    for args in (
        ["list-issuers"],
        ["list-publishers"],
        ["list-tokens"],
        ["list-tokens", "--live"],
        ["revoke-token", "--publisher", str(github_publisher.pk)],
        ["disable-publisher", str(github_publisher.pk)],
        ["purge", "--dry-run"],
    ):
        for fmt in ([], ["--json"]):
            out = StringIO()
            call_command("trusted_publishing", *args, *fmt, stdout=out, stderr=out)
            outputs.append(out.getvalue())
    joined = "\n".join(outputs)
    assert "acme/widgets" in joined  # the listings did list something
    assert not _secrets_for(joined, secrets)
