"""A hand-maintained OpenAPI 3.0 description of the exchange endpoints.

Served at ``/_/oidc/openapi.json`` for client authors and API fuzzers (the test suite runs
Schemathesis against it). Keep it in step with views.py: every status an endpoint can answer is
listed, and every error body is the problem document of :func:`views.problem_response`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from .errors import ErrorCode

try:  # Django >= 5.1: stay reachable behind LoginRequiredMiddleware
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover

    def login_not_required(view):  # type: ignore[no-untyped-def]
        return view


PROBLEM = "application/problem+json"
PYTP = "application/vnd.pypi.pytp.v1+json"
_REF_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": _REF_PROBLEM}}}


def _problems(*statuses: int) -> dict[str, Any]:
    names = {
        400: "Bad request",
        403: "Trusted publishing (or this issuer) is not enabled",
        404: "Not offered for this path",
        405: "Method not allowed",
        406: "Not acceptable",
        413: "Request body too large",
        415: "Unsupported media type",
        422: "Request refused (see `code`)",
        429: "Rate limited (see Retry-After)",
        503: "Issuer keys unavailable (see Retry-After)",
    }
    return {str(status): _problem(names[status]) for status in statuses}


_MINT_OPERATION: dict[str, Any] = {
    "summary": "Exchange a CI identity token (OIDC JWT) for a short-lived upload token",
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string", "description": "The OIDC identity token."},
                        "features": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "enum": ["single-use-token", "multi-use-token"],
                            },
                        },
                        "packages": {
                            "type": "array",
                            "items": {"type": "string", "minLength": 1, "maxLength": 200},
                            "minItems": 1,
                            "maxItems": 100,
                        },
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "Upload token minted",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["success", "token", "expires"],
                        "properties": {
                            "success": {"type": "boolean", "enum": [True]},
                            "token": {"type": "string"},
                            "expires": {"type": "integer"},
                        },
                    }
                }
            },
        },
        **_problems(400, 403, 405, 413, 415, 422, 429, 503),
    },
}

SCHEMA: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Trusted Publishing token exchange",
        "version": "1",
        "description": "PyPI-compatible Trusted Publishing endpoints (PEP 807 discovery, "
        "audience, mint-token, burn-token). Errors are RFC 9457 problem documents that also "
        "carry PyPI's `message` + `errors[{code, description}]` envelope.",
    },
    "paths": {
        "/.well-known/pytp": {
            "get": {
                "summary": "PEP 807 discovery for an upload URL path",
                "parameters": [
                    {
                        "name": "discover",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The upload URL's path, quote_plus-encoded.",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Endpoints and features for this upload path",
                        "content": {
                            ct: {"schema": {"$ref": "#/components/schemas/Discovery"}}
                            for ct in (PYTP, "application/json")
                        },
                    },
                    **_problems(404, 405, 406),
                },
            }
        },
        "/_/oidc/audience": {
            "get": {
                "summary": "The audience (`aud`) identity tokens must be requested for",
                "responses": {
                    "200": {
                        "description": "The audience",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["audience"],
                                    "properties": {"audience": {"type": "string"}},
                                }
                            }
                        },
                    },
                    **_problems(403, 405),
                },
            }
        },
        "/_/oidc/mint-token": {"post": _MINT_OPERATION},
        "/_/oidc/github/mint-token": {
            "post": {**_MINT_OPERATION, "summary": "Legacy alias of /_/oidc/mint-token"}
        },
        "/_/oidc/burn-token": {
            "post": {
                "summary": "Revoke a minted token (always 202, whether or not it existed)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["token"],
                                "properties": {"token": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "Accepted",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["message", "errors"],
                                    "properties": {
                                        "message": {"type": "string"},
                                        "errors": {"type": "array", "maxItems": 0},
                                    },
                                }
                            }
                        },
                    },
                    **_problems(405, 415, 429),
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Discovery": {
                "type": "object",
                "required": [
                    "audience-endpoint",
                    "token-mint-endpoint",
                    "features",
                    "default-features",
                ],
                "properties": {
                    "audience-endpoint": {"type": "string"},
                    "token-mint-endpoint": {"type": "string"},
                    "features": {"type": "array", "items": {"type": "string"}},
                    "default-features": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail", "code", "message", "errors"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "code": {"type": "string", "enum": [code.value for code in ErrorCode]},
                    "message": {"type": "string", "enum": ["Token request failed"]},
                    "errors": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["code", "description"],
                            "properties": {
                                "code": {"type": "string"},
                                "description": {"type": "string"},
                            },
                        },
                    },
                },
            },
        }
    },
}


@method_decorator(login_not_required, name="dispatch")
class OpenAPIView(APIView):
    """``GET /_/oidc/openapi.json``: the document above (public: it describes public endpoints)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(SCHEMA)
