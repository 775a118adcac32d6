"""Project-name helpers (PEP 503 normalisation and validation)."""

from __future__ import annotations

import re

# PEP 508 / core metadata: letters, digits, and . _ - inside; must start and end alphanumeric.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_.]+")


def normalize_project_name(name: str) -> str:
    """Return the PEP 503 normalised form of a project name."""
    return _SEPARATORS.sub("-", name).lower()


def is_valid_project_name(name: str) -> bool:
    return isinstance(name, str) and len(name) <= 200 and bool(_VALID_NAME.match(name))
