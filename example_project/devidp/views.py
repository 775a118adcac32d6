"""Discovery, JWKS, and GitHub Actions' ID-token request API, for local experiments.

A CI job is played with the environment GitHub gives it::

    GITHUB_ACTIONS=true
    ACTIONS_ID_TOKEN_REQUEST_URL=https://127.0.0.1:8443/_dev/idp/token
    ACTIONS_ID_TOKEN_REQUEST_TOKEN=dev-request-token      # settings.DEVIDP["REQUEST_TOKEN"]

The job's claims come from ``settings.DEVIDP["CLAIMS"]``; each can be overridden with a query
parameter on the request URL: ``...?repository=acme/other&workflow=ci.yml&environment=&ref=...``
(an empty ``environment`` means "no deployment environment").
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import jwt
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from .keys import load_key, public_jwk

_CLAIM_PARAMS = ("repository", "workflow", "environment", "ref", "event_name")


def _config() -> dict[str, Any]:
    return getattr(settings, "DEVIDP", {})


def _guard() -> None:
    # Belt and braces: the URLs are not mounted without DEBUG, and the views refuse as well.
    if not settings.DEBUG:
        raise Http404


def issuer_url(request: HttpRequest) -> str:
    configured = _config().get("ISSUER")
    if configured:
        return configured.rstrip("/")
    return request.build_absolute_uri(reverse("devidp:about")).rstrip("/")


def _key():  # type: ignore[no-untyped-def]
    return load_key(_config().get("KEY_FILE") or str(settings.DATA_DIR / "devidp-key.pem"))


@require_GET
def about(request: HttpRequest) -> HttpResponse:
    _guard()
    token_url = request.build_absolute_uri(reverse("devidp:token"))
    return HttpResponse(
        f"Development identity provider (DEBUG only)\nissuer: {issuer_url(request)}\n"
        f"ACTIONS_ID_TOKEN_REQUEST_URL={token_url}\n"
        f"ACTIONS_ID_TOKEN_REQUEST_TOKEN=<settings.DEVIDP['REQUEST_TOKEN']>\n",
        content_type="text/plain; charset=utf-8",
    )


@require_GET
def discovery(request: HttpRequest) -> JsonResponse:
    _guard()
    return JsonResponse({
        "issuer": issuer_url(request),
        "jwks_uri": request.build_absolute_uri(reverse("devidp:jwks")),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
                             "repository", "repository_id", "repository_owner",
                             "repository_owner_id", "run_id", "workflow_ref",
                             "job_workflow_ref", "environment", "event_name"],
    })


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    _guard()
    return JsonResponse({"keys": [public_jwk(_key())]})


def _stable_id(kind: str, name: str) -> str:
    return str(int(hashlib.sha256(f"{kind}:{name.lower()}".encode()).hexdigest()[:8], 16))


def github_claims(issuer: str, audience: str, job: dict[str, str]) -> dict[str, Any]:
    """The claim set GitHub Actions puts in an ID token, for the job described by ``job``."""
    now = int(time.time())
    repository = job["repository"]
    owner = repository.split("/", 1)[0]
    ref = job["ref"]
    workflow_ref = f"{repository}/.github/workflows/{job['workflow']}@{ref}"
    environment = job.get("environment") or ""
    sha = "0" * 40
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "iat": now, "nbf": now - 5, "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "sub": f"repo:{repository}:environment:{environment}" if environment
        else f"repo:{repository}:ref:{ref}",
        "repository": repository, "repository_owner": owner,
        # Stable fake numeric ids derived from the names (GitHub's are immutable numbers).
        "repository_owner_id": _stable_id("owner", owner),
        "repository_id": _stable_id("repository", repository),
        "repository_visibility": "private", "ref": ref,
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "sha": sha, "workflow": "Release", "workflow_ref": workflow_ref, "workflow_sha": sha,
        "job_workflow_ref": workflow_ref, "job_workflow_sha": sha,
        "event_name": job.get("event_name") or "push", "actor": "dev", "actor_id": "1",
        "run_id": str(now), "run_number": "1", "run_attempt": "1",
        "runner_environment": "self-hosted",
    }
    if environment:
        claims["environment"] = environment
    return claims


@require_GET
def token(request: HttpRequest) -> JsonResponse:
    _guard()
    expected = str(_config().get("REQUEST_TOKEN", ""))
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if (scheme.lower() != "bearer" or not expected
            or not hmac.compare_digest(supplied.strip().encode(), expected.encode())):
        return JsonResponse({"message": "Bad credentials"}, status=401)
    audience = request.GET.get("audience", "")
    if not audience:
        return JsonResponse({"message": "Missing 'audience' query parameter"}, status=400)
    job = {**_config().get("CLAIMS", {})}
    for name in _CLAIM_PARAMS:
        if name in request.GET:
            job[name] = request.GET[name]
    key = _key()
    jwk = public_jwk(key)
    value = jwt.encode(github_claims(issuer_url(request), audience, job), key,
                       algorithm="RS256", headers={"kid": jwk["kid"], "typ": "JWT"})
    return JsonResponse({"count": 1, "value": value})
