"""An operator's afternoon in a real browser.

Log in, register a pending GitHub publisher (first with a wrong workflow name), let CI exchange
an identity token for an upload token, upload with it, find the mint in the audit log, revoke the
token and watch the next upload fail.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.dists import make_sdist
from trusted_publishing.models import AuditEvent, GitHubPublisher, IssuedToken
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token

# serialized_rollback: restore the seeded public issuers the flush after this test removes.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ISSUER_URL = "https://token.actions.test"


def _post(url: str, **kwargs: Any) -> requests.Response:
    # A fresh, closed-after-use connection: an idle keep-alive socket would leave a live-server
    # thread waiting until after the server (and its shared DB connection) is gone.
    with requests.Session() as session:
        session.trust_env = False  # no proxy / CA-bundle variables for a loopback server
        return session.post(url, headers={"Connection": "close"}, timeout=30, **kwargs)


def _upload(base: str, token: str, version: str) -> requests.Response:
    # A real sdist: the example index reads the name and version from its PKG-INFO.
    with tempfile.TemporaryDirectory() as tmp:
        content = make_sdist("gadgets", version, Path(tmp)).path.read_bytes()
    return _post(
        f"{base}/legacy/",
        auth=("__token__", token),
        data={
            ":action": "file_upload",
            "protocol_version": "1",
            "name": "gadgets",
            "version": version,
            "filetype": "sdist",
            "pyversion": "source",
            "sha256_digest": hashlib.sha256(content).hexdigest(),
        },
        files={"content": (f"gadgets-{version}.tar.gz", content, "application/octet-stream")},
    )


def _login(page: Any, base: str, user: Any) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_operator_flow(
    page: Any, screenshot: Any, live_server: Any, admin_user: Any, settings: Any, tmp_path: Path
) -> None:
    # The example index creates projects for pending publishers and stores files.
    settings.TRUSTED_PUBLISHING = {
        **settings.TRUSTED_PUBLISHING,
        "HOST_INTEGRATION": "example_project.index.integration.IndexIntegration",
    }
    settings.MEDIA_ROOT = str(tmp_path)
    base = live_server.url
    issuer = TestIssuer(ISSUER_URL)
    issuer.register("github", static=True, name="CI test issuer")

    _login(page, base, admin_user)
    screenshot("01-admin-index")

    # --- register a pending publisher; the first attempt has a path for a workflow name -----
    page.goto(f"{base}/admin/trusted_publishing/githubpublisher/add/")
    page.select_option("#id_issuer", label="CI test issuer")
    page.fill("#id_repository_owner", "acme")
    page.fill("#id_repository_name", "gadgets")
    page.fill("#id_workflow_filename", ".github/workflows/release.yml")
    page.fill("#id_environment", "PyPI")
    page.check("#id_pending")
    page.fill("#id_projects-0-name", "Gadgets")
    page.click("input[name=_save]")
    error = page.locator(".errorlist").first
    assert "Workflow filename must be a filename only, without directories" in error.inner_text()
    screenshot("02-publisher-validation-error")
    assert not GitHubPublisher.objects.exists()

    page.fill("#id_workflow_filename", "release.yml")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    row = page.locator("#result_list tbody tr").first
    assert "acme/gadgets" in row.inner_text()
    assert "pending — creates project gadgets on first publish" in row.inner_text()
    screenshot("03-github-publishers")
    publisher = GitHubPublisher.objects.get()
    assert publisher.is_pending and publisher.environment == "pypi"

    # --- CI: exchange an identity token, then upload ---------------------------------------
    jwt = issuer.sign(
        issuer.github_claims(repository="acme/gadgets", environment="pypi", run_id="4242")
    )
    response = _post(f"{base}/_/oidc/mint-token", json={"token": jwt})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert _upload(base, token, "1.0").status_code == 200

    # The publisher is now an ordinary one with its ids bound.
    page.goto(f"{base}/admin/trusted_publishing/githubpublisher/{publisher.pk}/change/")
    content = page.content()
    assert "1001" in content and "2002" in content  # owner id / repository id from the claims
    assert "pending —" not in content
    screenshot("04-publisher-change")

    # --- the audit log shows the mint, with its claims --------------------------------------
    page.goto(f"{base}/admin/trusted_publishing/auditevent/")
    page.click("#changelist-filter a:text-is('token minted')")
    page.wait_for_url("**kind__exact=token.minted**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "acme/gadgets" in rows.first.inner_text()
    screenshot("05-audit-log")
    rows.first.locator("th a").click()
    claims = page.locator("table.tp-claims")
    assert re.search(r"run_id\s+4242", claims.inner_text())
    screenshot("06-audit-event")

    # --- deleting would say what breaks; revoke the token instead ---------------------------
    page.goto(f"{base}/admin/trusted_publishing/githubpublisher/{publisher.pk}/delete/")
    assert "1 live upload token will stop working immediately." in page.inner_text("#content")
    screenshot("07-publisher-delete-confirmation")

    page.goto(f"{base}/admin/trusted_publishing/issuedtoken/?state=live")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "live" in rows.first.inner_text()
    rows.first.locator("input.action-select").check()
    page.select_option("select[name=action]", "revoke")
    page.click(".actions button[type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert "1 token revoked." in page.inner_text(".messagelist")
    page.goto(f"{base}/admin/trusted_publishing/issuedtoken/")
    assert "revoked" in page.locator("#result_list tbody tr").first.inner_text()
    screenshot("08-tokens-after-revoke")

    token_row = IssuedToken.objects.get()
    assert token_row.state == "revoked"
    assert AuditEvent.objects.filter(kind="token.revoked", actor=admin_user.username).exists()

    # --- the next upload with the revoked token fails ---------------------------------------
    failed = _upload(base, token, "1.1")
    assert failed.status_code == 401, failed.text
    assert "Invalid or expired upload token" in failed.text
    assert authenticate_upload_token(token) is None

    page.goto(f"{base}/admin/trusted_publishing/trustedissuer/")
    assert ISSUER_URL in page.inner_text("#result_list")
    screenshot("09-trusted-issuers")

    # No screen showed the token or the JWT.
    for path in [
        "auditevent",
        "issuedtoken",
        f"issuedtoken/{token_row.pk}/change",
        "githubpublisher",
        "publisher",
    ]:
        page.goto(f"{base}/admin/trusted_publishing/{path}/")
        html = page.content()
        assert token not in html and jwt not in html and token_row.digest not in html
