"""Every error code the app answers with, in one place (docs/errors.md is checked against it).

Codes are stable strings. The first six are PyPI's, so clients and runbooks written for PyPI
keep working; the rest name conditions PyPI folds into those or does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    title: str
    #: what an operator or release engineer does about it
    hint: str


class ErrorCode(str, Enum):
    INVALID_PAYLOAD = "invalid-payload"
    INVALID_TOKEN = "invalid-token"
    INVALID_PUBLISHER = "invalid-publisher"
    INVALID_PENDING_PUBLISHER = "invalid-pending-publisher"
    INVALID_REUSE_TOKEN = "invalid-reuse-token"
    NOT_ENABLED = "not-enabled"
    UNKNOWN_ISSUER = "unknown-issuer"
    ISSUER_UNAVAILABLE = "issuer-unavailable"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    PACKAGE_NOT_AUTHORISED = "package-not-authorised"
    PAYLOAD_TOO_LARGE = "payload-too-large"
    NOT_ACCEPTABLE = "not-acceptable"
    RATE_LIMITED = "rate-limited"
    NOT_FOUND = "not-found"

    @property
    def spec(self) -> ErrorSpec:
        return ERRORS[self]


ERRORS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.INVALID_PAYLOAD: ErrorSpec(
        422,
        "Malformed request",
        'Send a JSON object {"token": "<OIDC JWT>"} with optional "features" and '
        '"packages" lists of strings.',
    ),
    ErrorCode.INVALID_TOKEN: ErrorSpec(
        422,
        "Identity token rejected",
        "The JWT's signature, audience, issuer or validity window did not verify. Request a fresh "
        "token for the audience from /_/oidc/audience.",
    ),
    ErrorCode.INVALID_PUBLISHER: ErrorSpec(
        422,
        "No matching trusted publisher",
        "Check the publisher registered for this project (repository, workflow, environment) "
        "against the claims shown.",
    ),
    ErrorCode.INVALID_PENDING_PUBLISHER: ErrorSpec(
        422,
        "Pending publisher cannot be used",
        "The pending publisher expired or its project already exists; ask an operator to "
        "register an ordinary publisher.",
    ),
    ErrorCode.INVALID_REUSE_TOKEN: ErrorSpec(
        422,
        "Identity token already used",
        "Each identity token can be exchanged once. Request a new one from the CI provider.",
    ),
    ErrorCode.NOT_ENABLED: ErrorSpec(
        403,
        "Trusted publishing not enabled",
        "An operator turned Trusted Publishing (or this issuer) off.",
    ),
    ErrorCode.UNKNOWN_ISSUER: ErrorSpec(
        422,
        "Issuer not trusted",
        "Add the issuer with `manage.py trusted_publishing add-issuer` or in admin → "
        "Trusted issuers.",
    ),
    ErrorCode.ISSUER_UNAVAILABLE: ErrorSpec(
        503,
        "Issuer keys unavailable",
        "The identity provider's keys could not be fetched; retry shortly.",
    ),
    ErrorCode.UNSUPPORTED_FEATURE: ErrorSpec(
        422,
        "Unsupported feature",
        "Request only features listed in the discovery document.",
    ),
    ErrorCode.PACKAGE_NOT_AUTHORISED: ErrorSpec(
        422,
        "Package not authorised for this publisher",
        "Ask only for projects the publisher is registered for.",
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorSpec(
        413, "Request body too large", "Send only the token and the optional lists."
    ),
    ErrorCode.NOT_ACCEPTABLE: ErrorSpec(
        406,
        "Not acceptable",
        "Accept application/vnd.pypi.pytp.v1+json or application/json.",
    ),
    ErrorCode.RATE_LIMITED: ErrorSpec(
        429, "Too many requests", "Wait for the number of seconds in Retry-After."
    ),
    ErrorCode.NOT_FOUND: ErrorSpec(
        404,
        "Trusted publishing not offered for this path",
        "Use the upload URL of this index (e.g. /legacy/).",
    ),
}


class TrustedPublishingError(Exception):
    """An exchange failure with a stable code and a message safe to show to the client.

    Messages never contain the identity token, a minted token or key material.
    """

    def __init__(
        self,
        code: ErrorCode,
        description: str,
        *,
        claims: dict | None = None,
        issuer_url: str = "",
        publisher: object | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.claims = claims or {}
        self.issuer_url = issuer_url
        self.publisher = publisher
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return self.code.spec.status


class IssuerUnavailable(Exception):
    """Key material for a trusted issuer could not be obtained (network, size, bad document)."""


class UploadDenied(Exception):
    """The credential may not upload to the requested project. ``reason`` is client-safe."""

    def __init__(self, reason: str, code: str = "upload-denied") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
