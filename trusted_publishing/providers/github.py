"""GitHub Actions (github.com, and GitHub Enterprise through its own issuers).

Each identifying field of a GitHubPublisher is compared with the token by one check below.
`sub` is ignored on purpose: GitHub lets repositories customise its template.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ..conf import tp_settings
from ..forms import PublisherForm, validate_workflow_suffix
from ..models import TrustedIssuer
from ..models.publishers import GitHubPublisher, Provider
from ..names import ascii_lower
from .base import (
    ClaimMismatch,
    ProviderRules,
    bind_or_compare,
    claim_str,
    ref_after,
    require_environment,
)
from .spec import ENVIRONMENT_OPTION, CliOption, Column, ProviderSpec, Split


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


# --- registration (PyPI's rules, see warehouse/oidc/forms) --------------------------------------
OWNER_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*$")
REPOSITORY_RE = re.compile(r"^[a-zA-Z0-9-_.]+$")
ENVIRONMENT_FORBIDDEN_RE = re.compile(r"[\x00-\x1F\x7F'\"`,;\\]")


class GitHubPublisherForm(PublisherForm):
    class Meta:
        model = GitHubPublisher
        fields = [
            "issuer",
            "repository_owner",
            "repository_name",
            "workflow_filename",
            "environment",
            "enabled",
        ]
        help_texts = {
            "repository_owner": _("The user or organisation owning the repository."),
            "workflow_filename": _("File name under .github/workflows/, e.g. release.yml."),
            "environment": _("Optional GitHub environment; empty allows any."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Leading/trailing spaces are an error (as on PyPI), not silently dropped.
        self.fields["environment"].strip = False  # type: ignore[attr-defined]

    def clean_repository_owner(self) -> str:
        owner = self.cleaned_data["repository_owner"].strip()
        if not OWNER_RE.match(owner):
            raise ValidationError(_("Invalid GitHub user or organization name."))
        return owner

    def clean_repository_name(self) -> str:
        name = self.cleaned_data["repository_name"].strip()
        if not REPOSITORY_RE.match(name):
            raise ValidationError(_("Invalid repository name."))
        return name

    def clean_workflow_filename(self) -> str:
        filename = self.cleaned_data["workflow_filename"].strip()
        validate_workflow_suffix(filename, _("Workflow name"))
        if "/" in filename or "\\" in filename:
            raise ValidationError(
                _("Workflow filename must be a filename only, without directories")
            )
        return filename

    def clean_environment(self) -> str:
        env = self.cleaned_data.get("environment") or ""
        if not env:
            return ""
        if len(env) > 255:
            raise ValidationError(_("Environment name is too long (at most 255 characters)."))
        if env != env.strip():
            raise ValidationError(_("Environment name may not start or end with whitespace."))
        if ENVIRONMENT_FORBIDDEN_RE.search(env):
            raise ValidationError(
                _(
                    "Environment name may not contain quotes, backticks, commas, semicolons, "
                    "backslashes or control characters."
                )
            )
        # GitHub environments are case-insensitive (over ASCII); the model stores them so too.
        return ascii_lower(env)


GITHUB = ProviderSpec(
    rules=GitHubRules(),
    form=GitHubPublisherForm,
    public_issuers=("https://token.actions.githubusercontent.com",),
    cli_options=(
        CliOption(
            "repository",
            Split(("repository_owner", "repository_name"), "OWNER/REPO", "acme/widgets"),
            help="OWNER/REPO (GitHub)",
        ),
        CliOption("workflow", "workflow_filename", help="workflow file name (GitHub)"),
        ENVIRONMENT_OPTION,
    ),
    admin_columns=(
        Column("repository", _("repository")),
        "workflow_filename",
        "environment",
    ),
    admin_search=("workflow_filename",),
)
