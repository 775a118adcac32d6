"""HTTP endpoints: PEP 807 discovery, audience, mint-token (plus PyPI's legacy alias), burn-token.

All are CSRF-exempt, unauthenticated JSON endpoints. Mint and burn read the raw body as JSON
whatever the ``Content-Type`` (older uv sent none; curl recipes send form encoding). Every error
is one envelope that today's clients parse (``message`` + ``errors[{code, description}]``) and
that is also an RFC 9457 problem document (``type``, ``title``, ``status``, ``detail``).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.http import http_date
from django.views import View

from .conf import is_enabled, tp_settings
from .errors import ErrorCode, TrustedPublishingError
from .exchange import FEATURES, burn_token, exchange, record_failure
from .integration import get_integration
from .throttling import ExchangeRateThrottle

PYTP_MEDIA_TYPE = "application/vnd.pypi.pytp.v1+json"
PROBLEM_MEDIA_TYPE = "application/problem+json"
#: What Django's ``never_cache`` sets, written once: answers that carry or refuse a credential
#: must not be stored by any cache on the way.
NEVER_STORE = "max-age=0, no-cache, no-store, must-revalidate, private"


_expires: tuple[int, str] = (0, "")


def never_store(response: HttpResponse) -> HttpResponse:
    global _expires
    response["Cache-Control"] = NEVER_STORE
    if "Expires" not in response:
        now = int(time.time())
        if _expires[0] != now:  # an HTTP date has one-second resolution: format it once
            _expires = (now, http_date(now))
        response["Expires"] = _expires[1]
    return response


def json_response(
    body: dict[str, Any], *, status: int = 200, content_type: str = "application/json"
) -> HttpResponse:
    """A JSON answer that is never stored by a cache (plain ``json.dumps``: only str, int and
    bool values here)."""
    return never_store(HttpResponse(json.dumps(body), status=status, content_type=content_type))


def problem_response(
    code: ErrorCode,
    detail: str,
    request: HttpRequest | None = None,
    *,
    retry_after: int | None = None,
    status: int | None = None,
) -> HttpResponse:
    spec = code.spec
    status = status or spec.status
    body = {
        "type": f"urn:trusted-publishing:error:{code.value}",
        "title": spec.title,
        "status": status,
        "detail": detail,
        "code": code.value,
        "message": "Token request failed",
        "errors": [{"code": code.value, "description": detail}],
    }
    if request is not None:
        body["instance"] = request.path
    response = json_response(body, status=status, content_type=PROBLEM_MEDIA_TYPE)
    if retry_after is not None:
        response["Retry-After"] = str(max(1, int(retry_after)))
    return response


class TrustedPublishingView(View):
    """Base: a plain Django view (no session, no CSRF: these endpoints take no cookies), our own
    error envelope, and the exchange rate limit for views that set ``throttled = True``.

    Not a DRF ``APIView``: its request wrapper, negotiation and policy machinery cost about as
    much as verifying the token's signature, and these endpoints use none of it.
    """

    #: Count requests against ``EXCHANGE_RATE_LIMIT`` (mint and burn).
    throttled = False

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        # What csrf_exempt() and login_not_required() mark, without their per-request wrappers:
        # no cookies are read here, and CI jobs never log in.
        view.csrf_exempt = True
        view.login_required = False
        return view

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            if (
                self.throttled
                and tp_settings.EXCHANGE_RATE_LIMIT is not None
                and request.method.lower() in self.http_method_names
            ):
                throttle = ExchangeRateThrottle()
                if not throttle.allow_request(request, self):
                    wait = math.ceil(throttle.wait() or 60)
                    raise TrustedPublishingError(
                        ErrorCode.RATE_LIMITED,
                        f"too many token requests from this address; retry in {wait} s",
                        retry_after=wait,
                    )
            return super().dispatch(request, *args, **kwargs)
        except TrustedPublishingError as exc:
            return problem_response(exc.code, exc.description, request, retry_after=exc.retry_after)

    def http_method_not_allowed(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        response = problem_response(
            ErrorCode.INVALID_PAYLOAD,
            f'Method "{request.method}" not allowed.',
            request,
            status=405,
        )
        response["Allow"] = ", ".join(self._allowed_methods())
        return response

    def read_json_body(self, request: HttpRequest) -> dict[str, Any]:
        limit = int(tp_settings.MAX_REQUEST_BYTES)
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit():
            raise TrustedPublishingError(ErrorCode.INVALID_PAYLOAD, "invalid Content-Length")
        if int(declared) > limit:
            raise TrustedPublishingError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"request body larger than {limit} bytes"
            )
        raw = request.read(limit + 1)
        if len(raw) > limit:
            raise TrustedPublishingError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"request body larger than {limit} bytes"
            )
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise TrustedPublishingError(
                ErrorCode.INVALID_PAYLOAD, "request body is not valid JSON"
            ) from None
        if not isinstance(body, dict):
            raise TrustedPublishingError(
                ErrorCode.INVALID_PAYLOAD, "request body must be a JSON object"
            )
        return body


def _accepts_json(header: str) -> bool:
    """PEP 807: no Accept means the vendor type; otherwise one of our types must be acceptable."""
    if not header.strip():
        return True
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and media.lower() in {PYTP_MEDIA_TYPE, "application/json", "application/*", "*/*"}:
            return True
    return False


class DiscoveryView(TrustedPublishingView):
    """``GET /.well-known/pytp?discover=<quote_plus(upload path)>`` (PEP 807)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not _accepts_json(request.META.get("HTTP_ACCEPT", "")):
            return problem_response(
                ErrorCode.NOT_ACCEPTABLE,
                f"this endpoint serves {PYTP_MEDIA_TYPE}",
                request,
            )
        # Django already percent-decoded the query string: this is the upload URL's path.
        path = request.GET.get("discover")
        if (
            not is_enabled()
            or not isinstance(path, str)
            or not path
            or not get_integration().is_upload_path(path)
        ):
            return problem_response(
                ErrorCode.NOT_FOUND,
                "this index offers no trusted publishing for that upload path",
                request,
            )
        single = tp_settings.DEFAULT_FEATURE == "single-use-token"
        document = {
            "audience-endpoint": request.build_absolute_uri(reverse("trusted_publishing:audience")),
            "token-mint-endpoint": request.build_absolute_uri(
                reverse("trusted_publishing:mint-token")
            ),
            "features": list(FEATURES),
            "default-features": ["single-use-token" if single else "multi-use-token"],
        }
        wants_vendor = PYTP_MEDIA_TYPE in request.META.get(
            "HTTP_ACCEPT", ""
        ) or not request.META.get("HTTP_ACCEPT")
        return JsonResponse(
            document, content_type=PYTP_MEDIA_TYPE if wants_vendor else "application/json"
        )


class AudienceView(TrustedPublishingView):
    """``GET /_/oidc/audience``: the ``aud`` CI jobs must request their identity token for."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not is_enabled():
            return problem_response(
                ErrorCode.NOT_ENABLED, "Trusted publishing functionality not enabled", request
            )
        return JsonResponse({"audience": tp_settings.AUDIENCE})


class MintTokenView(TrustedPublishingView):
    """``POST /_/oidc/mint-token``: ``{"token", "features"?, "packages"?}`` -> upload token."""

    throttled = True

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            body = self.read_json_body(request)
        except TrustedPublishingError as exc:
            # A refused body is a failed exchange too: it goes to the audit trail.
            record_failure(exc, request)
            raise
        result = exchange(
            body.get("token"),
            features=body.get("features"),
            packages=body.get("packages"),
            request=request,
        )
        return json_response({"success": True, "token": result.token, "expires": result.expires})


class BurnTokenView(TrustedPublishingView):
    """``POST /_/oidc/burn-token``: revoke a minted token. Always 202, whatever happened, so the
    endpoint reveals nothing about which tokens exist."""

    throttled = True

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            body = self.read_json_body(request)
        except TrustedPublishingError:
            body = {}
        burn_token(body.get("token"), request)
        return json_response({"message": "Accepted", "errors": []}, status=202)
