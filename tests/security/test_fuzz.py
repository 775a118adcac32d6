"""Property-based fuzzing of the exchange endpoints and of upload authentication.

Properties: any input gets a documented status (never a 500), error bodies are the problem
document with a known code, and a refused request writes nothing but its audit row (row counts
of tokens and replay records unchanged).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from tests.plugins.secrets_guard import count, record_secret
from trusted_publishing.authentication import UploadTokenAuthentication
from trusted_publishing.errors import ErrorCode, UploadDenied
from trusted_publishing.models import AuditEvent, IssuedToken, UsedIdentityToken
from trusted_publishing.testing import TestIssuer
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CODES = {code.value for code in ErrorCode}
MINT_PATHS = ["/_/oidc/mint-token", "/_/oidc/github/mint-token"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
segment = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60
)
jwt_like = st.builds(lambda a, b, c: f"{a}.{b}.{c}", segment, segment, segment)
token_values = st.one_of(jwt_like, st.text(max_size=80), json_values)
bodies = st.one_of(
    st.binary(max_size=300),
    st.fixed_dictionaries(
        {},
        optional={
            "token": token_values,
            "features": st.one_of(
                st.lists(st.sampled_from(["single-use-token", "multi-use-token", "x"]), max_size=3),
                json_values,
            ),
            "packages": st.one_of(st.lists(st.text(max_size=20), max_size=4), json_values),
        },
    ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "application/jwt"]
)


@pytest.fixture(autouse=True)
def _audit_every_refusal() -> Any:
    """Every refusal's own audit row is asserted here: no sampling (its test is elsewhere)."""
    from trusted_publishing.conf import override_tp_settings

    with override_tp_settings(AUDIT_SAMPLE_UNVERIFIED=False):
        yield


def _assert_problem(response: Any, statuses: set[int]) -> None:
    assert response.status_code in statuses, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] in CODES
    assert body["errors"][0]["code"] == body["code"]


def _rows() -> tuple[int, int]:
    return IssuedToken.objects.count(), UsedIdentityToken.objects.count()


@pytest.mark.django_db
@FUZZ
@given(body=bodies, content_type=content_types, path=st.sampled_from(MINT_PATHS))
def test_mint_survives_random_bodies(
    client: Any, body: bytes, content_type: str, path: str
) -> None:
    before = _rows()
    response = client.generic("POST", path, body, content_type=content_type)
    count("fuzzed requests")
    _assert_problem(response, {400, 413, 415, 422})
    assert _rows() == before


# --- genuinely signed tokens with arbitrary claim values ---------------------------------------
CLAIM_NAMES = [
    "iss", "aud", "exp", "iat", "nbf", "jti", "sub", "repository", "repository_owner",
    "repository_owner_id", "repository_id", "job_workflow_ref", "workflow_ref", "ref", "sha",
    "event_name", "environment", "run_id", "run_attempt", "actor",
]  # fmt: skip


def _sign_raw(issuer: TestIssuer, claims: dict[str, Any]) -> str:
    """Sign any JSON payload (PyJWT's encode would refuse some claim types)."""

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = enc(json.dumps({"alg": "RS256", "typ": "JWT", "kid": issuer.kid}).encode())
    signing_input = f"{head}.{enc(json.dumps(claims).encode())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), issuer.private_key)
    token = f"{signing_input}.{enc(signature)}"
    record_secret(token, "jwt")
    return token


@pytest.mark.django_db
@FUZZ
@given(
    overrides=st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=4),
    drop=st.lists(st.sampled_from(CLAIM_NAMES), max_size=2),
    features=st.sampled_from([None, ["single-use-token"], ["multi-use-token"]]),
)
def test_signed_tokens_with_arbitrary_claims(
    client: Any,
    github_issuer: TestIssuer,
    github_publisher: Any,
    overrides: dict[str, Any],
    drop: list[str],
    features: list[str] | None,
) -> None:
    claims = github_issuer.github_claims()
    claims.update(overrides)
    for name in drop:
        claims.pop(name, None)
    body: dict[str, Any] = {"token": _sign_raw(github_issuer, claims)}
    if features:
        body["features"] = features
    tokens, used = _rows()
    audits = AuditEvent.objects.count()

    response = client.post(MINT_PATHS[0], data=json.dumps(body), content_type="application/json")
    count("fuzzed requests")
    if response.status_code == 200:
        minted = response.json()["token"]
        assert minted.startswith("pypi-")
        assert _rows() == (tokens + 1, used + 1)
        assert AuditEvent.objects.filter(kind=AuditEvent.Kind.TOKEN_MINTED).count() >= 1
    else:
        _assert_problem(response, {403, 422})
        assert _rows() == (tokens, used)
        # Exactly the failure's audit row, nothing else.
        assert AuditEvent.objects.count() == audits + 1
        assert AuditEvent.objects.order_by("-pk").first().kind == AuditEvent.Kind.EXCHANGE_FAILED


# --- discovery, audience, burn ----------------------------------------------------------
@pytest.mark.django_db
@FUZZ
@given(discover=st.one_of(st.none(), st.text(max_size=60)), accept=st.text(max_size=60))
def test_discovery_survives_random_queries(client: Any, discover: str | None, accept: str) -> None:
    params = {} if discover is None else {"discover": discover}
    try:
        response = client.get("/.well-known/pytp", params, HTTP_ACCEPT=accept)
    except ValueError:
        return  # the test client itself refuses some header values (e.g. newlines)
    count("fuzzed requests")
    if response.status_code == 200:
        assert {"audience-endpoint", "token-mint-endpoint"} <= set(response.json())
    else:
        _assert_problem(response, {404, 406})


@pytest.mark.django_db
@FUZZ
@given(query=st.text(max_size=40), method=st.sampled_from(["GET", "HEAD", "POST", "DELETE"]))
def test_audience_survives_random_requests(client: Any, query: str, method: str) -> None:
    response = client.generic(method, "/_/oidc/audience", QUERY_STRING=query)
    count("fuzzed requests")
    if method in {"GET", "HEAD"}:
        assert response.status_code == 200
    else:
        assert response.status_code == 405


@pytest.mark.django_db
@FUZZ
@given(body=bodies, content_type=content_types)
def test_burn_is_always_202_and_revokes_nothing_unknown(
    client: Any, body: bytes, content_type: str
) -> None:
    before = IssuedToken.objects.filter(revoked_at__isnull=False).count()
    response = client.generic("POST", "/_/oidc/burn-token", body, content_type=content_type)
    count("fuzzed requests")
    assert response.status_code == 202
    assert response.json() == {"message": "Accepted", "errors": []}
    assert IssuedToken.objects.filter(revoked_at__isnull=False).count() == before


# --- upload authentication -------------------------------------------------------------
def _basic(user: str, password: str) -> str:
    raw = f"{user}:{password}".encode("utf-8", "surrogatepass")
    return "Basic " + base64.b64encode(raw).decode()


authorization_values = st.one_of(
    st.text(max_size=80),
    st.builds(lambda t: "Bearer " + t, st.text(max_size=80)),
    st.builds(lambda t: "Bearer pypi-" + t, st.text(max_size=600)),
    st.builds(_basic, st.sampled_from(["__token__", "admin", ""]), st.text(max_size=80)),
    st.builds(lambda t: _basic("__token__", "pypi-" + t), st.text(max_size=100)),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=60)),
)


@pytest.mark.django_db
@FUZZ
@given(header=authorization_values)
def test_upload_authentication_survives_random_credentials(rf: Any, header: str) -> None:
    try:
        request = rf.post("/legacy/", HTTP_AUTHORIZATION=header)
    except ValueError:
        return
    count("fuzzed requests")
    try:
        result = UploadTokenAuthentication().authenticate(Request(request))
    except AuthenticationFailed as exc:
        assert exc.status_code == 401
        assert "pypi-" not in str(exc.detail) or header.count("pypi-") == 0
    else:
        assert result is None
    password = header.partition(" ")[2]
    assert authenticate_upload_token(password) is None


@pytest.mark.django_db
@FUZZ
@given(header=authorization_values)
def test_upload_endpoint_answers_401_to_random_credentials(client: Any, header: str) -> None:
    try:
        response = client.post("/legacy/", {":action": "file_upload"}, HTTP_AUTHORIZATION=header)
    except ValueError:
        return
    count("fuzzed requests")
    # 429: the example index throttles failed password logins per address (10 per 5 minutes).
    assert response.status_code in (401, 429)


@pytest.mark.django_db
@FUZZ
@given(project=st.text(max_size=40))
def test_authorize_upload_with_random_project_names(
    client: Any, github_issuer: TestIssuer, github_publisher: Any, project: str
) -> None:
    minted = client.post(
        MINT_PATHS[0],
        data=json.dumps({"token": github_issuer.sign(github_issuer.github_claims())}),
        content_type="application/json",
    ).json()["token"]
    principal = authenticate_upload_token(minted)
    assert principal is not None
    count("fuzzed requests")
    try:
        authorize_upload(principal, project)
    except UploadDenied as exc:
        assert minted not in exc.reason
        assert principal.may_upload_to(project) is False or "widgets" in exc.reason
    else:
        assert principal.may_upload_to(project)


@pytest.mark.django_db
def test_authorize_upload_with_a_nul_byte_in_the_project_name(
    client: Any, github_issuer: TestIssuer, github_publisher: Any
) -> None:
    """PostgreSQL refuses NUL in text and jsonb: the denial must still be recorded, not crash."""
    minted = client.post(
        MINT_PATHS[0],
        data=json.dumps({"token": github_issuer.sign(github_issuer.github_claims())}),
        content_type="application/json",
    ).json()["token"]
    principal = authenticate_upload_token(minted)
    assert principal is not None
    with pytest.raises(UploadDenied):
        authorize_upload(principal, "widgets\x00")
    denied = AuditEvent.objects.get(kind=AuditEvent.Kind.UPLOAD_DENIED)
    assert "\x00" not in json.dumps(denied.projects)
    assert authorize_upload(principal, "widgets") is principal  # the transaction is intact
