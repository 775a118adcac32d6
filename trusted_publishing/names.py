"""Project-name helpers (PEP 503 normalisation and validation)."""

from __future__ import annotations

import re

# PEP 508 / core metadata: ASCII letters, digits, and . _ - inside; must start and end with a
# letter or digit. Spelled out, not re.IGNORECASE: that also matches U+0130, U+0131, U+017F and
# the Kelvin sign U+212A, look-alikes that would normalise onto ASCII names.
_VALID_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
_SEPARATORS = re.compile(r"[-_.]+")


def normalize_project_name(name: str) -> str:
    """Return the PEP 503 normalised form of a project name."""
    return _SEPARATORS.sub("-", name).lower()


def ascii_lower(value: str) -> str:
    """Lower-case ASCII letters only: ``str.lower`` would also fold look-alikes such as the
    Kelvin sign onto "k", so "p\u212ag" would equal "pkg"."""
    return value.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def is_valid_project_name(name: str) -> bool:
    return isinstance(name, str) and len(name) <= 200 and bool(_VALID_NAME.fullmatch(name))
