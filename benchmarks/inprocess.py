"""In-process measurements: the JWT baseline, the test-client floor, the mint view, upload
authentication, and the statements each sends to the database."""

from __future__ import annotations

import json
import re
from typing import Any

import jwt
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from trusted_publishing.conf import tp_settings
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .stats import summarise, time_calls

MINT_PATH = "/_/oidc/mint-token"
PROJECT = "widgets"
REPOSITORY = "acme/widgets"
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def sign_tokens(issuer: TestIssuer, count: int) -> list[str]:
    """Identity tokens for the benchmark publisher, each with its own ``jti``."""
    return [issuer.sign(issuer.github_claims(REPOSITORY, lifetime=900)) for _ in range(count)]


def mint_body(token: str) -> str:
    return json.dumps({"token": token})


def classify(queries: list[dict[str, Any]]) -> dict[str, Any]:
    control = [q["sql"] for q in queries if q["sql"].upper().startswith(_CONTROL)]
    data = [q["sql"] for q in queries if not q["sql"].upper().startswith(_CONTROL)]
    return {
        "total": len(queries),
        "data": len(data),
        "control": len(control),
        "statements": [_short(q["sql"]) for q in queries],
    }


def _short(sql: str) -> str:
    """Verb and table only: never parameters (no digests or claims in reports)."""
    write = re.match(r"\s*(INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", sql, re.IGNORECASE)
    if write:
        return f"{write.group(1).upper()} {write.group(2)}"
    read = re.search(r"\bFROM\s+\"?(\w+)", sql, re.IGNORECASE)
    if sql.lstrip().upper().startswith("SELECT") and read:
        return f"SELECT FROM {read.group(1)}"
    return " ".join(sql.split()[:2])[:40]


# --- baseline ----------------------------------------------------------------------------
def baseline(issuer: TestIssuer, tokens: list[str], time_limit: float) -> dict[str, Any]:
    """Bare PyJWT: the same RS256 token and options as verification.py, key already parsed."""
    key = jwt.PyJWK(issuer.public_jwk())
    audience = tp_settings.AUDIENCE
    options = {
        "verify_signature": True,
        "require": ["iss", "aud", "exp", "iat"],
        "verify_exp": True,
        "verify_iat": True,
        "verify_nbf": True,
        "verify_aud": True,
        "verify_iss": True,
        "strict_aud": True,
        # The app refuses RSA keys under 2048 bits; the check is a key-size lookup.
        "enforce_minimum_key_length": True,
    }

    def decode(token: str) -> object:
        return jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer.url,
            leeway=tp_settings.JWT_LEEWAY,
            options=options,
        )

    for token in tokens[:50]:
        decode(token)
    return summarise(time_calls(decode, tokens, time_limit=time_limit))


def cache_round_trip(iterations: int, time_limit: float) -> dict[str, Any]:
    """One ``get`` on the shared cache: the mint makes two (issuer, key set), upload auth one."""
    from trusted_publishing.cache import get_cache

    cache = get_cache()
    cache.set("tp:bench-probe", {"url": "x" * 40, "keys": {"kid": {"n": "x" * 342}}}, 300)
    return summarise(
        time_calls(lambda _: cache.get("tp:bench-probe"), range(iterations), time_limit=time_limit)
    )


# --- test-client floor -------------------------------------------------------------------
def client_floor(path: str, tokens: list[str], time_limit: float) -> dict[str, Any]:
    """A no-op view through the same test client, middleware and body size as a mint."""
    client = Client()
    bodies = [mint_body(t) for t in tokens]

    def post(body: str) -> None:
        response = client.post(path, data=body, content_type="application/json")
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")

    for body in bodies[:50]:
        post(body)
    return summarise(time_calls(post, bodies, time_limit=time_limit))


# --- mint --------------------------------------------------------------------------------
def mint(tokens: list[str], time_limit: float) -> tuple[dict[str, Any], int, list[str]]:
    """The full mint view; every identity token is used once. Returns (summary, errors,
    minted upload tokens)."""
    client = Client()
    bodies = [mint_body(t) for t in tokens]
    responses: list[Any] = []

    def post(body: str) -> None:
        responses.append(client.post(MINT_PATH, data=body, content_type="application/json"))

    samples = time_calls(post, bodies, time_limit=time_limit)
    # Read the answers after the clock stops: parsing them is the client's work, not the index's.
    minted = [json.loads(r.content)["token"] for r in responses if r.status_code == 200]
    return summarise(samples), len(responses) - len(minted), minted


def mint_queries(tokens: list[str]) -> dict[str, Any]:
    """Statements of one steady-state mint (caches warm, ``last_used_at`` recent)."""
    client = Client()
    counts: list[dict[str, Any]] = []
    for token in tokens:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                MINT_PATH, data=mint_body(token), content_type="application/json"
            )
        if response.status_code != 200:
            raise RuntimeError(f"mint answered {response.status_code}")
        counts.append(classify(captured.captured_queries))
    # The most frequent shape is the steady state; report the worst one seen too.
    return {**counts[-1], "max_total": max(c["total"] for c in counts)}


# --- upload authentication -----------------------------------------------------------------
def upload_auth(
    raw_tokens: list[str], time_limit: float, *, iterations: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the app adds to one upload: authenticate the token and authorise the project.

    ``warm``: one multi-use token used for many files (twine uploads wheel and sdist with the
    same token), so its lookup is cached after the first file. ``first``: each token's first
    upload, lookup from the database.
    """

    def first_use(raw: str) -> None:
        principal = authenticate_upload_token(raw)
        if principal is None:
            raise RuntimeError("a freshly minted token was not recognised")
        authorize_upload(principal, PROJECT)

    first = summarise(time_calls(first_use, raw_tokens[1:], time_limit=time_limit))

    repeated = raw_tokens[0]
    first_use(repeated)  # fills the token cache
    warm = summarise(
        time_calls(lambda _: first_use(repeated), range(iterations), time_limit=time_limit)
    )
    return warm, first


def upload_queries(raw: str) -> dict[str, Any]:
    principal = authenticate_upload_token(raw)  # warm the cache outside the capture
    assert principal is not None
    authorize_upload(principal, PROJECT)
    with CaptureQueriesContext(connection) as captured:
        principal = authenticate_upload_token(raw)
        assert principal is not None
        authorize_upload(principal, PROJECT)
    return classify(captured.captured_queries)


def upload_queries_first_use(raw: str) -> dict[str, Any]:
    with CaptureQueriesContext(connection) as captured:
        principal = authenticate_upload_token(raw)
        assert principal is not None
        authorize_upload(principal, PROJECT)
    return classify(captured.captured_queries)
