"""HTTP endpoints: PEP 807 discovery, audience, mint-token (plus PyPI's legacy alias), burn-token.

DRF views with no authentication, session or CSRF (CI jobs send no cookies and never log in).
Mint and burn read the body as JSON whatever the ``Content-Type`` (uv, curl recipes and
pypa/gh-action-pypi-publish send different ones). Every error is one envelope that today's
clients parse (``message`` + ``errors[{code, description}]``) and that is also an RFC 9457
problem document (``type``, ``title``, ``status``, ``detail``): see :func:`exception_handler`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .conf import is_enabled, tp_settings
from .errors import ErrorCode, TrustedPublishingError
from .exchange import FEATURES, burn_token, exchange, record_failure
from .integration import get_integration
from .serializers import PACKAGES_MESSAGE, MintRequestSerializer, first_error
from .throttling import ExchangeRateThrottle

PYTP_MEDIA_TYPE = "application/vnd.pypi.pytp.v1+json"
PROBLEM_MEDIA_TYPE = "application/problem+json"


# --- parsing and rendering ------------------------------------------------------------------------
class AnyJSONParser(BaseParser):
    """The body as a JSON object, whatever the declared media type, at most MAX_REQUEST_BYTES."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        limit = int(tp_settings.MAX_REQUEST_BYTES)
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            # Refused before reading: a client may declare gigabytes and send nothing.
            raise TrustedPublishingError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"request body larger than {limit} bytes"
            )
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise TrustedPublishingError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"request body larger than {limit} bytes"
            )
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise TrustedPublishingError(
                ErrorCode.INVALID_PAYLOAD, "request body is not valid JSON"
            ) from None


class PlainJSONRenderer(JSONRenderer):
    """``json.dumps`` output (ASCII, ``", "`` separators): the bytes clients have parsed since
    the first release."""

    ensure_ascii = True
    compact = False


class ProblemRenderer(PlainJSONRenderer):
    media_type = PROBLEM_MEDIA_TYPE


class PytpRenderer(PlainJSONRenderer):
    media_type = PYTP_MEDIA_TYPE


class FirstRenderer(BaseContentNegotiation):
    """Mint, burn and audience answer JSON whatever ``Accept`` says (clients send anything from
    nothing to ``*/*``), and read the body with the view's one parser."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: Any = None):
        return renderers[0], renderers[0].media_type


class PytpNegotiation(FirstRenderer):
    """PEP 807 discovery: the vendor type when asked for or when ``Accept`` is absent,
    ``application/json`` when only that (or a wildcard) is acceptable, 406 otherwise."""

    ACCEPTABLE = frozenset({PYTP_MEDIA_TYPE, "application/json", "application/*", "*/*"})

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: Any = None):
        acceptable = self.acceptable_types(request.META.get("HTTP_ACCEPT", ""))
        if acceptable is None or PYTP_MEDIA_TYPE in acceptable:
            return renderers[0], renderers[0].media_type
        if acceptable & self.ACCEPTABLE:
            return renderers[1], renderers[1].media_type
        raise exceptions.NotAcceptable()

    @staticmethod
    def acceptable_types(header: str) -> set[str] | None:
        """The media types ``header`` accepts with q > 0 (None: no Accept header at all)."""
        if not header.strip():
            return None
        accepted = set()
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
            if q > 0:
                accepted.add(media.lower())
        return accepted


# --- errors ---------------------------------------------------------------------------------------
def problem_response(
    code: ErrorCode,
    detail: str,
    request: Any = None,
    *,
    retry_after: int | None = None,
    status_code: int | None = None,
) -> Response:
    status_code = status_code or code.spec.status
    body = {
        "type": f"urn:trusted-publishing:error:{code.value}",
        "title": code.spec.title,
        "status": status_code,
        "detail": detail,
        "code": code.value,
        "message": "Token request failed",
        "errors": [{"code": code.value, "description": detail}],
    }
    if request is not None:
        body["instance"] = request.path
    headers = {"Retry-After": str(max(1, int(retry_after)))} if retry_after is not None else None
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_MEDIA_TYPE)


def as_trusted_publishing_error(exc: Exception) -> TrustedPublishingError | None:
    """The app's error for an exception raised while handling an exchange request."""
    if isinstance(exc, TrustedPublishingError):
        return exc
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = first_error(exc.detail)
        if code == ErrorCode.UNSUPPORTED_FEATURE.value:
            return TrustedPublishingError(ErrorCode.UNSUPPORTED_FEATURE, message)
        if field == "packages":
            message = PACKAGES_MESSAGE
        elif field == "features":
            message = "'features' must be a list of strings"
        return TrustedPublishingError(ErrorCode.INVALID_PAYLOAD, message)
    if isinstance(exc, exceptions.Throttled):
        wait = math.ceil(exc.wait or 60)
        return TrustedPublishingError(
            ErrorCode.RATE_LIMITED,
            f"too many token requests from this address; retry in {wait} s",
            retry_after=wait,
        )
    if isinstance(exc, exceptions.NotAcceptable):
        return TrustedPublishingError(
            ErrorCode.NOT_ACCEPTABLE, f"this endpoint serves {PYTP_MEDIA_TYPE}"
        )
    if isinstance(exc, exceptions.ParseError):
        return TrustedPublishingError(ErrorCode.INVALID_PAYLOAD, "request body is not valid JSON")
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler of the exchange views: every refusal is our problem document."""
    request = context.get("request")
    if isinstance(exc, exceptions.MethodNotAllowed):
        return problem_response(
            ErrorCode.INVALID_PAYLOAD, str(exc.detail), request, status_code=405
        )
    error = as_trusted_publishing_error(exc)
    if error is None:
        return None  # a bug: let Django's 500 handling (and error reporting) see it
    return problem_response(error.code, error.description, request, retry_after=error.retry_after)


# --- views ----------------------------------------------------------------------------------------
class TrustedPublishingAPIView(APIView):
    """Public JSON endpoints: no authentication, session or CSRF; our error envelope."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [AnyJSONParser]
    renderer_classes = [PlainJSONRenderer, ProblemRenderer]
    content_negotiation_class = FirstRenderer
    throttle_classes: list[Any] = []
    #: Django's no-store headers on every answer (they carry or refuse a credential).
    never_store = False

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # csrf_exempt comes with APIView; CI jobs never log in (LoginRequiredMiddleware); a
        # form-encoded token never reaches Django's error reports.
        view = sensitive_post_parameters("token")(super().as_view(**initkwargs))
        return login_not_required(view)

    def get_exception_handler(self) -> Any:
        return exception_handler

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.never_store or response.status_code >= 400:
            add_never_cache_headers(response)
        return response


class DiscoveryView(TrustedPublishingAPIView):
    """``GET /.well-known/pytp?discover=<quote_plus(upload path)>`` (PEP 807)."""

    renderer_classes = [PytpRenderer, PlainJSONRenderer]

    content_negotiation_class = PytpNegotiation

    def get(self, request: Request) -> Response:
        # Django already percent-decoded the query string: this is the upload URL's path.
        path = request.query_params.get("discover")
        if not is_enabled() or not path or not get_integration().is_upload_path(path):
            raise TrustedPublishingError(
                ErrorCode.NOT_FOUND, "this index offers no trusted publishing for that upload path"
            )
        single = tp_settings.DEFAULT_FEATURE == "single-use-token"
        return Response(
            {
                "audience-endpoint": request.build_absolute_uri(
                    reverse("trusted_publishing:audience")
                ),
                "token-mint-endpoint": request.build_absolute_uri(
                    reverse("trusted_publishing:mint-token")
                ),
                "features": list(FEATURES),
                "default-features": ["single-use-token" if single else "multi-use-token"],
            }
        )


class AudienceView(TrustedPublishingAPIView):
    """``GET /_/oidc/audience``: the ``aud`` CI jobs must request their identity token for."""

    def get(self, request: Request) -> Response:
        if not is_enabled():
            raise TrustedPublishingError(
                ErrorCode.NOT_ENABLED, "Trusted publishing functionality not enabled"
            )
        return Response({"audience": tp_settings.AUDIENCE})


class MintTokenView(TrustedPublishingAPIView):
    """``POST /_/oidc/mint-token``: ``{"token", "features"?, "packages"?}`` -> upload token."""

    throttle_classes = [ExchangeRateThrottle]
    never_store = True

    @sensitive_variables()  # the identity token and the minted token: never in crash reports
    def post(self, request: Request) -> Response:
        try:
            serializer = MintRequestSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
        except (TrustedPublishingError, exceptions.ValidationError) as exc:
            # A refused body is a failed exchange too: it goes to the audit trail.
            error = as_trusted_publishing_error(exc)
            assert error is not None
            record_failure(error, request._request)
            raise error from None
        data = serializer.validated_data
        result = exchange(
            data["token"],
            features=data.get("features"),
            packages=data.get("packages"),
            request=request._request,
        )
        return Response({"success": True, "token": result.token, "expires": result.expires})


class BurnTokenView(TrustedPublishingAPIView):
    """``POST /_/oidc/burn-token``: revoke a minted token. Always 202, whatever happened, so the
    endpoint reveals nothing about which tokens exist."""

    throttle_classes = [ExchangeRateThrottle]
    never_store = True

    @sensitive_variables()
    def post(self, request: Request) -> Response:
        try:
            body = request.data
        except (TrustedPublishingError, exceptions.APIException):
            body = {}
        raw = body.get("token") if isinstance(body, dict) else None
        burn_token(raw, request._request)
        return Response({"message": "Accepted", "errors": []}, status=status.HTTP_202_ACCEPTED)
