"""What every provider's claim rules share.

A provider module declares, for its publisher model:

* ``required_claims``: claims that must be present (non-empty strings unless noted);
* ``subject(claims)``: the lower-cased identity used to find candidate publishers;
* ``checks``: named functions ``check(publisher, claims, issuer) -> None`` that raise
  :class:`ClaimMismatch` — every identifying field of the publisher is compared by one of them;
* ``bindings(publisher, claims)``: immutable ids to remember on first use (resurrection);
* ``snapshot(claims)``: the non-secret claims stored with a minted token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from ..models import Publisher, TrustedIssuer
from ..names import ascii_lower


class ClaimMismatch(Exception):
    """A claim does not satisfy a publisher's rule. The message is safe to show the client."""

    def __init__(self, claim: str, message: str) -> None:
        super().__init__(message)
        self.claim = claim
        self.message = message


Check = Callable[[Any, dict[str, Any], TrustedIssuer], None]


def claim_str(claims: dict[str, Any], name: str) -> str:
    """The claim as a string, or raise ClaimMismatch if it is missing or not a string."""
    value = claims.get(name)
    if not isinstance(value, str):
        raise ClaimMismatch(name, f"claim {name!r} is missing or not a string")
    return value


def bind_or_compare(publisher: Any, field: str, claims: dict[str, Any], claim: str) -> None:
    """Immutable-id rule: a bound id must match; an unbound one is accepted (bound after mint)."""
    value = claim_str(claims, claim)
    if not value:
        raise ClaimMismatch(claim, f"claim {claim!r} is empty")
    bound = getattr(publisher, field)
    if bound and bound != value:
        raise ClaimMismatch(
            claim,
            f"{claim} {value!r} differs from the id {bound!r} bound to this publisher on first "
            "use (was the account or repository deleted and re-created?)",
        )


def ref_after(value: str, expected_path: str, filename: str) -> str | None:
    """The ref in ``<expected_path>@<ref>`` (a workflow or CI config reference), or None when
    ``value`` names another file. The path compares case-insensitively (owners and repositories
    do), the file name exactly. Never split at the last ``@``: refs may contain one
    (``refs/tags/widgets@1.2.3``)."""
    path, rest = value[: len(expected_path)], value[len(expected_path) :]
    if (
        path.lower() != expected_path.lower()
        or not path.endswith(filename)
        or not rest.startswith("@")
    ):
        return None
    return rest[1:]


def require_environment(
    publisher: Any, claims: dict[str, Any], provider_name: str, *, case_sensitive: bool
) -> None:
    """A publisher bound to a CI environment only accepts jobs that ran in that environment."""
    if not publisher.environment:
        return
    environment = claims.get("environment")
    if not isinstance(environment, str) or not environment:
        raise ClaimMismatch(
            "environment",
            f"this publisher requires the {provider_name} environment "
            f"{publisher.environment!r}; the job ran in none",
        )
    matches = (
        environment == publisher.environment
        if case_sensitive
        else ascii_lower(environment) == ascii_lower(publisher.environment)
    )
    if not matches:
        raise ClaimMismatch(
            "environment", f"environment {environment!r} is not {publisher.environment!r}"
        )


class ProviderRules:
    provider: ClassVar[str]
    model: ClassVar[type[Publisher]]
    #: Tokens must carry `jti` (replay key); otherwise the replay key is a hash of the token.
    requires_jti: ClassVar[bool] = False
    required_claims: ClassVar[tuple[str, ...]] = ()
    #: (name, check) pairs, all run for every candidate publisher.
    checks: ClassVar[tuple[tuple[str, Check], ...]] = ()
    #: Claims that ``subject()`` is built from: the candidate lookup already filters on them, so
    #: their checks are a second line of defence (kept so a check never depends on the query).
    lookup_claims: ClassVar[tuple[str, ...]] = ()
    #: Immutable ids (publisher field == claim name) remembered on the first successful exchange
    #: and enforced afterwards by a bind_or_compare check.
    bound_ids: ClassVar[tuple[str, ...]] = ()
    #: Claims copied (as strings, truncated) into the token snapshot and audit events.
    snapshot_claims: ClassVar[tuple[str, ...]] = ()
    run_id_claim: ClassVar[str] = ""

    def missing_claims(self, claims: dict[str, Any]) -> list[str]:
        missing = [c for c in self.required_claims if not isinstance(claims.get(c), str)]
        if self.requires_jti and not (isinstance(claims.get("jti"), str) and claims["jti"]):
            missing.append("jti")
        return missing

    def subject(self, claims: dict[str, Any]) -> str:
        raise NotImplementedError

    def specificity(self, publisher: Any) -> int:
        """Higher wins when several publishers match (constrained before unconstrained)."""
        return 0

    def verify(self, publisher: Any, claims: dict[str, Any], issuer: TrustedIssuer) -> None:
        for _name, check in self.checks:
            check(publisher, claims, issuer)

    def bindings(self, publisher: Any, claims: dict[str, Any]) -> dict[str, str]:
        """The ids to store now: those not bound yet (checks already verified the others)."""
        return {name: claims[name] for name in self.bound_ids if not getattr(publisher, name)}

    def snapshot(self, claims: dict[str, Any]) -> dict[str, str]:
        return safe_claims(claims, self.snapshot_claims)

    def run_id(self, claims: dict[str, Any]) -> str:
        value = claims.get(self.run_id_claim) if self.run_id_claim else None
        return str(value)[:100] if isinstance(value, str | int) else ""


def safe_claims(claims: dict[str, Any], names: Iterable[str]) -> dict[str, str]:
    """Non-secret claims as short strings (for the audit trail and token snapshots)."""
    out: dict[str, str] = {}
    for name in names:
        value = claims.get(name)
        if isinstance(value, str | int | float | bool) and value != "":
            out[name] = str(value)[:400]
    return out
