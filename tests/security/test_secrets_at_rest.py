"""Secrets hygiene: minted tokens are stored as hashes, and nothing in a database dump is a
usable credential. Also checks that the session-wide secrets guard really catches leaks."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from tests.plugins import secrets_guard
from trusted_publishing.models import IssuedToken
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

MINT = "/_/oidc/mint-token"


def _mint_some(client: Any, issuer: TestIssuer) -> tuple[list[str], list[str]]:
    """Mint single- and multi-use tokens, use one, burn one. Returns (minted, jwts)."""
    minted, jwts = [], []
    for features in (["single-use-token"], ["multi-use-token"], None):
        jwt = issuer.sign(issuer.github_claims())
        body: dict[str, Any] = {"token": jwt}
        if features:
            body["features"] = features
        response = client.post(MINT, data=json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.json()
        minted.append(response.json()["token"])
        jwts.append(jwt)
    principal = authenticate_upload_token(minted[0])
    assert principal is not None
    authorize_upload(principal, "widgets")  # audit rows with the claims snapshot
    burned = client.post(
        "/_/oidc/burn-token", data=json.dumps({"token": minted[1]}), content_type="application/json"
    )
    assert burned.status_code == 202
    return minted, jwts


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in [*value.keys(), *value.values()] for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _assert_no_credential(text: str, minted: list[str], jwts: list[str]) -> None:
    for token in minted:
        assert token not in text
        assert token.split("-", 1)[1][:20] not in text
    for jwt in jwts:
        assert jwt.rsplit(".", 1)[1][:40] not in text  # the signature, even in part
    assert secrets_guard.find_leaks(text) == []


def _assert_unusable(candidates: set[str]) -> None:
    prefix = "pypi-"
    tried = 0
    for value in candidates:
        for guess in {value, prefix + value, value.removeprefix("sha256:")}:
            assert authenticate_upload_token(guess) is None, guess[:20]
            tried += 1
    secrets_guard.count("dumped values tried as upload tokens", tried)
    assert tried > 50


@pytest.mark.django_db
def test_minted_tokens_are_stored_only_as_sha256_digests(
    client: Any, github_issuer: TestIssuer, github_publisher: Any
) -> None:
    minted, _ = _mint_some(client, github_issuer)
    digests = set(IssuedToken.objects.values_list("digest", flat=True))
    assert digests == {hashlib.sha256(t.encode()).hexdigest() for t in minted}
    for row in IssuedToken.objects.all():
        dumped = json.dumps({f.name: str(getattr(row, f.attname)) for f in row._meta.fields})
        assert not any(t in dumped for t in minted)


@pytest.mark.django_db
def test_dumpdata_holds_no_token_jwt_or_usable_credential(
    client: Any, github_issuer: TestIssuer, github_publisher: Any
) -> None:
    minted, jwts = _mint_some(client, github_issuer)
    out = io.StringIO()
    call_command("dumpdata", format="json", stdout=out)
    text = out.getvalue()
    assert '"model": "trusted_publishing.issuedtoken"' in text
    _assert_no_credential(text, minted, jwts)
    _assert_unusable(set(_strings(json.loads(text))))
    # The minted tokens themselves still work: the check above is not vacuous.
    assert authenticate_upload_token(minted[2]) is not None


def _pg_dump() -> str:
    found = shutil.which("pg_dump") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)), None
    )
    assert found, "pg_dump is required for this test (apt package postgresql-client)"
    return found


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_pg_dump_holds_no_token_jwt_or_usable_credential(
    client: Any, github_issuer: TestIssuer, github_publisher: Any
) -> None:
    minted, jwts = _mint_some(client, github_issuer)
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": str(db.get("PASSWORD") or "")}
    result = subprocess.run(
        [
            _pg_dump(),
            "--data-only",
            "-h",
            str(db.get("HOST") or "127.0.0.1"),
            "-p",
            str(db.get("PORT") or 5432),
            "-U",
            str(db.get("USER") or "postgres"),
            str(db["NAME"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-500:]
    text = result.stdout
    assert "trusted_publishing_issuedtoken" in text
    _assert_no_credential(text, minted, jwts)
    words = set(re.findall(r"[A-Za-z0-9_\-]{20,}", text))
    _assert_unusable(words)


# --- the guard itself -----------------------------------------------------------------------------
SELFTEST = "tests.security.secrets-guard-selftest"


def test_secrets_guard_catches_a_logged_token_even_truncated() -> None:
    token = "pypi-" + secrets.token_urlsafe(32)
    secrets_guard.record_secret(token, "minted token")
    logger = logging.getLogger(SELFTEST)
    before = len(secrets_guard.leaks())
    try:
        logger.warning("debugging: got %s", token)
        logger.info("prefix only: %s...", token[:36])  # 31 secret characters
        logger.info("harmless: %s", token[:12])
        found = [leak for leak in secrets_guard.leaks()[before:] if SELFTEST in leak]
        assert len(found) == 2
    finally:
        secrets_guard.forget_leaks(SELFTEST)
    assert not [leak for leak in secrets_guard.leaks() if SELFTEST in leak]


def test_secrets_guard_knows_test_issuer_keys_and_jwts() -> None:
    issuer = TestIssuer("https://selftest.example")
    jwt = issuer.sign(issuer.github_claims())
    pem = issuer.private_pem().decode()
    assert secrets_guard.find_leaks(f"oops {jwt} oops") == ["jwt"]
    assert secrets_guard.find_leaks(pem.splitlines()[5]) == ["private key"]
    assert secrets_guard.find_leaks(issuer.public_pem().decode()) == []
    # The public parts of a JWT are not secrets: only its signature is.
    assert secrets_guard.find_leaks(jwt.rsplit(".", 1)[0]) == []
