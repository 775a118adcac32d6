"""Discovery, JWKS, and a CI job's ID-token request API, for local experiments (DEBUG only).

Two issuers share one signing key:

* **GitHub Actions** at the mount point (``https://127.0.0.1:8443/_dev/idp``). A CI job is played
  with the environment GitHub gives it::

      GITHUB_ACTIONS=true
      ACTIONS_ID_TOKEN_REQUEST_URL=https://127.0.0.1:8443/_dev/idp/token
      ACTIONS_ID_TOKEN_REQUEST_TOKEN=dev-request-token      # settings.DEVIDP["REQUEST_TOKEN"]

  The job's claims come from ``settings.DEVIDP["CLAIMS"]``; each can be overridden with a query
  parameter on the request URL: ``...?repository=acme/other&workflow=ci.yml&environment=&ref=...``
  (an empty ``environment`` means "no deployment environment").

* **GitLab CI/CD** one level down (``https://127.0.0.1:8443/_dev/idp/gitlab``). GitLab hands a job
  its token in a variable (``id_tokens:``), so fetch one with the same bearer token and put it
  where GitLab would::

      GITLAB_CI=true
      <AUDIENCE>_ID_TOKEN=$(curl -s -H "Authorization: bearer dev-request-token" \\
          "https://127.0.0.1:8443/_dev/idp/gitlab/token?audience=<audience>" | jq -r .value)

  Claims come from ``settings.DEVIDP["GITLAB_CLAIMS"]`` (defaults derived from ``CLAIMS``), each
  overridable per request: ``?project_path=acme/other&ci_config=ci/release.yml&ref=...``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from .keys import load_key, public_jwk

#: Query parameters that override the GitHub job's claims (settings.DEVIDP["CLAIMS"]).
_CLAIM_PARAMS = ("repository", "workflow", "environment", "ref", "event_name")
#: Query parameters that override the GitLab job's claims (settings.DEVIDP["GITLAB_CLAIMS"]).
_GITLAB_CLAIM_PARAMS = ("project_path", "ci_config", "environment", "ref", "pipeline_source")

_SHA = "0" * 40


def _config() -> dict[str, Any]:
    return getattr(settings, "DEVIDP", {})


def _guard() -> None:
    # Belt and braces: the URLconf refuses to load without DEBUG, and the views refuse as well.
    if not settings.DEBUG:
        raise Http404


def issuer_url(request: HttpRequest) -> str:
    """The GitHub issuer's URL (``iss``): ``DEVIDP["ISSUER"]``, else the mount point's URL."""
    configured = _config().get("ISSUER")
    if configured:
        return configured.rstrip("/")
    return request.build_absolute_uri(reverse("devidp:about")).rstrip("/")


def gitlab_issuer_url(request: HttpRequest) -> str:
    """The GitLab issuer's URL: ``DEVIDP["GITLAB_ISSUER"]``, else ``<GitHub issuer>/gitlab``."""
    configured = _config().get("GITLAB_ISSUER")
    if configured:
        return configured.rstrip("/")
    if _config().get("ISSUER"):
        return f"{issuer_url(request)}/gitlab"
    return request.build_absolute_uri(reverse("devidp:gitlab-about")).rstrip("/")


def key_file() -> str:
    configured = _config().get("KEY_FILE")
    if configured:
        return str(configured)
    data_dir = getattr(settings, "DATA_DIR", None)
    if data_dir:
        return str(Path(data_dir) / "devidp-key.pem")
    raise ImproperlyConfigured("Set DEVIDP['KEY_FILE'], where the dev issuer keeps its key.")


def _key():  # type: ignore[no-untyped-def]
    return load_key(key_file())


def _text(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/plain; charset=utf-8")


@require_GET
def about(request: HttpRequest) -> HttpResponse:
    _guard()
    token_url = request.build_absolute_uri(reverse("devidp:token"))
    gitlab = request.build_absolute_uri(reverse("devidp:gitlab-about"))
    return _text(
        f"Development identity provider (DEBUG only)\n\n"
        f"GitHub Actions issuer: {issuer_url(request)}\n"
        f"GITHUB_ACTIONS=true\n"
        f"ACTIONS_ID_TOKEN_REQUEST_URL={token_url}\n"
        f"ACTIONS_ID_TOKEN_REQUEST_TOKEN=<settings.DEVIDP['REQUEST_TOKEN']>\n\n"
        f"GitLab CI/CD issuer: {gitlab_issuer_url(request)} (see {gitlab})\n"
    )


@require_GET
def gitlab_about(request: HttpRequest) -> HttpResponse:
    _guard()
    token_url = request.build_absolute_uri(reverse("devidp:gitlab-token"))
    return _text(
        f"Development identity provider (DEBUG only), GitLab CI/CD issuer\n"
        f"issuer: {gitlab_issuer_url(request)}\n"
        f"token: GET {token_url}?audience=<audience>\n"
        f"       Authorization: bearer <settings.DEVIDP['REQUEST_TOKEN']>\n"
        f"then:  GITLAB_CI=true <AUDIENCE>_ID_TOKEN=<value> uv publish ...\n"
    )


def _discovery(issuer: str, jwks_uri: str, claims: list[str]) -> JsonResponse:
    return JsonResponse(
        {
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": claims,
        }
    )


@require_GET
def discovery(request: HttpRequest) -> JsonResponse:
    _guard()
    return _discovery(
        issuer_url(request),
        request.build_absolute_uri(reverse("devidp:jwks")),
        ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_id",
         "repository_owner", "repository_owner_id", "run_id", "workflow_ref",
         "job_workflow_ref", "environment", "event_name"],
    )


@require_GET
def gitlab_discovery(request: HttpRequest) -> JsonResponse:
    _guard()
    return _discovery(
        gitlab_issuer_url(request),
        request.build_absolute_uri(reverse("devidp:gitlab-jwks")),
        ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "namespace_id", "namespace_path",
         "project_id", "project_path", "pipeline_id", "pipeline_source", "ref", "ref_path",
         "ref_type", "sha", "environment", "ci_config_ref_uri", "ci_config_sha"],
    )


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    _guard()
    return JsonResponse({"keys": [public_jwk(_key())]})


def _stable_id(kind: str, name: str) -> str:
    return str(int(hashlib.sha256(f"{kind}:{name.lower()}".encode()).hexdigest()[:8], 16))


def _registered(issuer: str, audience: str, lifetime: int) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer, "aud": audience, "iat": now, "nbf": now - 5, "exp": now + lifetime,
            "jti": str(uuid.uuid4())}


def github_claims(issuer: str, audience: str, job: dict[str, str]) -> dict[str, Any]:
    """The claim set GitHub Actions puts in an ID token, for the job described by ``job``."""
    claims = _registered(issuer, audience, 300)
    repository = job["repository"]
    owner = repository.split("/", 1)[0]
    ref = job["ref"]
    workflow_ref = f"{repository}/.github/workflows/{job['workflow']}@{ref}"
    environment = job.get("environment") or ""
    claims.update({
        "sub": f"repo:{repository}:environment:{environment}" if environment
        else f"repo:{repository}:ref:{ref}",
        "repository": repository, "repository_owner": owner,
        # Stable fake numeric ids derived from the names (GitHub's are immutable numbers).
        "repository_owner_id": _stable_id("owner", owner),
        "repository_id": _stable_id("repository", repository),
        "repository_visibility": "private", "ref": ref,
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "sha": _SHA, "workflow": "Release", "workflow_ref": workflow_ref, "workflow_sha": _SHA,
        "job_workflow_ref": workflow_ref, "job_workflow_sha": _SHA,
        "event_name": job.get("event_name") or "push", "actor": "dev", "actor_id": "1",
        "run_id": str(claims["iat"]), "run_number": "1", "run_attempt": "1",
        "runner_environment": "self-hosted",
    })
    if environment:
        claims["environment"] = environment
    return claims


def gitlab_claims(issuer: str, audience: str, job: dict[str, str]) -> dict[str, Any]:
    """The claim set GitLab CI/CD puts in an ``id_tokens:`` token, for the job ``job``."""
    claims = _registered(issuer, audience, 3600)
    project_path = job["project_path"]
    namespace = project_path.rsplit("/", 1)[0]
    ref_path = job["ref"]
    ref = ref_path.rsplit("/", 1)[-1]
    ref_type = "tag" if ref_path.startswith("refs/tags/") else "branch"
    host = issuer.split("://", 1)[-1].rstrip("/")
    environment = job.get("environment") or ""
    claims.update({
        "sub": f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}",
        "namespace_id": _stable_id("namespace", namespace), "namespace_path": namespace,
        "project_id": _stable_id("project", project_path), "project_path": project_path,
        "job_namespace_id": _stable_id("namespace", namespace), "job_namespace_path": namespace,
        "job_project_id": _stable_id("project", project_path), "job_project_path": project_path,
        "user_id": "1", "user_login": "dev", "pipeline_id": str(claims["iat"]),
        "pipeline_source": job.get("pipeline_source") or "push", "job_id": str(claims["iat"]),
        "ref": ref, "ref_type": ref_type, "ref_path": ref_path,
        "ref_protected": "true", "runner_id": 1, "runner_environment": "self-hosted",
        "sha": _SHA, "project_visibility": "private",
        # `<issuer host>/<project path>//<CI config file>@<ref_path>`, as GitLab writes it.
        "ci_config_ref_uri": f"{host}/{project_path}//{job['ci_config']}@{ref_path}",
        "ci_config_sha": _SHA,
    })
    if environment:
        claims["environment"] = environment
    return claims


def _authorised(request: HttpRequest) -> bool:
    expected = str(_config().get("REQUEST_TOKEN", ""))
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    return bool(
        scheme.lower() == "bearer"
        and expected
        and hmac.compare_digest(supplied.strip().encode(), expected.encode())
    )


def _sign(claims: dict[str, Any]) -> JsonResponse:
    key = _key()
    value = jwt.encode(claims, key, algorithm="RS256",
                       headers={"kid": public_jwk(key)["kid"], "typ": "JWT"})
    return JsonResponse({"count": 1, "value": value})


def _job(request: HttpRequest, defaults: dict[str, Any], params: tuple[str, ...]) -> dict[str, str]:
    job = {key: str(value) for key, value in defaults.items()}
    for name in params:
        if name in request.GET:
            job[name] = request.GET[name]
    return job


@require_GET
def token(request: HttpRequest) -> JsonResponse:
    """GitHub's ID-token request API: ``GET ...?audience=<aud>`` with the bearer request token."""
    _guard()
    if not _authorised(request):
        return JsonResponse({"message": "Bad credentials"}, status=401)
    audience = request.GET.get("audience", "")
    if not audience:
        return JsonResponse({"message": "Missing 'audience' query parameter"}, status=400)
    job = _job(request, _config().get("CLAIMS", {}), _CLAIM_PARAMS)
    return _sign(github_claims(issuer_url(request), audience, job))


def gitlab_defaults() -> dict[str, Any]:
    """``DEVIDP["GITLAB_CLAIMS"]`` over defaults taken from the GitHub job (``CLAIMS``)."""
    github = _config().get("CLAIMS", {})
    return {
        "project_path": github.get("repository", "acme/widgets"),
        "ci_config": ".gitlab-ci.yml",
        "environment": github.get("environment", ""),
        "ref": github.get("ref", "refs/tags/v0.1.0"),
        "pipeline_source": "push",
        **_config().get("GITLAB_CLAIMS", {}),
    }


@require_GET
def gitlab_token(request: HttpRequest) -> JsonResponse:
    """A GitLab-shaped token for ``?audience=<aud>`` (same bearer request token as GitHub's)."""
    _guard()
    if not _authorised(request):
        return JsonResponse({"message": "Bad credentials"}, status=401)
    audience = request.GET.get("audience", "")
    if not audience:
        return JsonResponse({"message": "Missing 'audience' query parameter"}, status=400)
    job = _job(request, gitlab_defaults(), _GITLAB_CLAIM_PARAMS)
    return _sign(gitlab_claims(gitlab_issuer_url(request), audience, job))
