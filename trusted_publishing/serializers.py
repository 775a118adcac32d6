"""The mint request's contract: ``{"token": str, "features"?: [str], "packages"?: [str]}``.

Each field's errors carry a code: the view answers with :class:`~.errors.ErrorCode` of that name
when there is one (``unsupported-feature``), ``invalid-payload`` otherwise.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .errors import ErrorCode
from .exchange import FEATURES
from .names import is_valid_project_name, normalize_project_name
from .verification import MAX_TOKEN_LENGTH

MAX_PACKAGES = 100


class StrictStringField(serializers.CharField):
    """A JSON string, nothing converted (DRF's CharField would accept ``123`` as ``"123"``)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class MintRequestSerializer(serializers.Serializer):
    token = StrictStringField(
        trim_whitespace=False,
        max_length=MAX_TOKEN_LENGTH,
        error_messages={
            "required": "'token' must be a non-empty string",
            "null": "'token' must be a non-empty string",
            "blank": "'token' must be a non-empty string",
            "invalid": "'token' must be a non-empty string",
            "max_length": "malformed JWT: token too long",
        },
    )
    features = serializers.ListField(
        child=StrictStringField(trim_whitespace=False, allow_blank=True),
        required=False,
        allow_null=True,
        error_messages={
            "not_a_list": "'features' must be a list of strings",
            "null": "'features' must be a list of strings",
        },
    )
    packages = serializers.ListField(
        child=StrictStringField(trim_whitespace=False, max_length=200),
        required=False,
        allow_null=True,
        allow_empty=False,
        max_length=MAX_PACKAGES,
    )

    default_error_messages = {"invalid": "request body must be a JSON object"}

    def validate_features(self, features: list[str] | None) -> list[str] | None:
        if features is None:
            return None
        unknown = sorted({f for f in features if f not in FEATURES})
        if unknown:
            raise serializers.ValidationError(
                f"unsupported feature(s) {', '.join(repr(u[:50]) for u in unknown[:5])}; this "
                f"index supports {', '.join(FEATURES)}",
                code=ErrorCode.UNSUPPORTED_FEATURE.value,
            )
        if "single-use-token" in features and "multi-use-token" in features:
            raise serializers.ValidationError(
                "'single-use-token' and 'multi-use-token' cannot be requested together",
                code=ErrorCode.UNSUPPORTED_FEATURE.value,
            )
        return features

    def validate_packages(self, packages: list[str] | None) -> list[str] | None:
        if packages is None:
            return None
        if not all(is_valid_project_name(p) for p in packages):
            raise serializers.ValidationError(PACKAGES_MESSAGE)
        return sorted({normalize_project_name(p) for p in packages})


#: The one message for every malformed ``packages`` value.
PACKAGES_MESSAGE = f"'packages' must be a non-empty list of at most {MAX_PACKAGES} project names"


def first_error(errors: Any, field: str = "") -> tuple[str, str, str]:
    """(field, message, code) of the first error in a serializer's ``errors``."""
    if isinstance(errors, dict):
        for name, value in errors.items():
            return first_error(value, field or ("" if name == "non_field_errors" else name))
    if isinstance(errors, list) and errors:
        return first_error(errors[0], field)
    return field, str(errors), getattr(errors, "code", "invalid")
