"""GitHub Actions claim rules (github.com, and GitHub Enterprise through its own issuers).

Each identifying field of a GitHubPublisher is compared with the token by one check below.
`sub` is ignored on purpose: GitHub lets repositories customise its template.
"""

from __future__ import annotations

from typing import Any

from ..conf import tp_settings
from ..models import GitHubPublisher, Provider, TrustedIssuer
from .base import (
    ClaimMismatch,
    ProviderRules,
    bind_or_compare,
    claim_str,
    ref_after,
    require_environment,
)


def check_repository(
    publisher: GitHubPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    repository = claim_str(claims, "repository")
    if repository.lower() != publisher.repository.lower():
        raise ClaimMismatch(
            "repository",
            f"repository {repository!r} is not {publisher.repository!r}",
        )


def check_repository_owner(
    publisher: GitHubPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    owner = claim_str(claims, "repository_owner")
    if owner.lower() != publisher.repository_owner.lower():
        raise ClaimMismatch(
            "repository_owner", f"repository owner {owner!r} is not {publisher.repository_owner!r}"
        )


def check_repository_owner_id(
    publisher: GitHubPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    bind_or_compare(publisher, "repository_owner_id", claims, "repository_owner_id")


def check_repository_id(
    publisher: GitHubPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    bind_or_compare(publisher, "repository_id", claims, "repository_id")


def check_workflow(
    publisher: GitHubPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    """`job_workflow_ref` must name the registered workflow file *in the publisher's repository*,
    at the ref or commit that triggered the run. A reusable workflow from another repository
    therefore never matches."""
    job_workflow_ref = claim_str(claims, "job_workflow_ref")
    expected_path = f"{publisher.repository}/.github/workflows/{publisher.workflow_filename}"
    at = ref_after(job_workflow_ref, expected_path, "/" + publisher.workflow_filename)
    if at is None:
        raise ClaimMismatch(
            "job_workflow_ref",
            f"workflow {job_workflow_ref!r} is not {expected_path!r}",
        )
    ref = claims.get("ref") if isinstance(claims.get("ref"), str) else ""
    sha = claims.get("sha") if isinstance(claims.get("sha"), str) else ""
    if not at or at not in {r for r in (ref, sha) if r}:
        raise ClaimMismatch(
            "job_workflow_ref", "workflow ref does not match the run's 'ref' or 'sha' claim"
        )


def check_event(publisher: GitHubPublisher, claims: dict[str, Any], issuer: TrustedIssuer) -> None:
    event = claim_str(claims, "event_name")
    if event in tp_settings.GITHUB_DENIED_EVENTS:
        raise ClaimMismatch(
            "event_name",
            f"publishing from a workflow triggered by {event!r} is not allowed: it runs with "
            "input from forks",
        )


def check_environment(
    publisher: GitHubPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    # GitHub environment names are case-insensitive.
    require_environment(publisher, claims, "GitHub", case_sensitive=False)


class GitHubRules(ProviderRules):
    provider = Provider.GITHUB
    model = GitHubPublisher
    requires_jti = True
    required_claims = (
        "repository",
        "repository_owner",
        "repository_owner_id",
        "repository_id",
        "job_workflow_ref",
        "ref",
        "sha",
        "event_name",
    )
    lookup_claims = ("repository",)
    checks = (
        ("repository", check_repository),
        ("repository_owner", check_repository_owner),
        ("repository_owner_id", check_repository_owner_id),
        ("repository_id", check_repository_id),
        ("job_workflow_ref", check_workflow),
        ("event_name", check_event),
        ("environment", check_environment),
    )
    snapshot_claims = (
        "repository",
        "repository_owner",
        "repository_owner_id",
        "repository_id",
        "ref",
        "sha",
        "workflow_ref",
        "job_workflow_ref",
        "environment",
        "event_name",
        "run_id",
        "run_attempt",
        "actor",
        "runner_environment",
    )
    bound_ids = ("repository_owner_id", "repository_id")
    run_id_claim = "run_id"

    def subject(self, claims: dict[str, Any]) -> str:
        return str(claims.get("repository", "")).lower()

    def specificity(self, publisher: GitHubPublisher) -> int:
        return 1 if publisher.environment else 0
