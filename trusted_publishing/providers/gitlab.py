"""GitLab CI/CD (gitlab.com or a self-managed instance registered as an issuer)."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ..forms import PublisherForm, validate_workflow_suffix
from ..models import TrustedIssuer
from ..models.publishers import GitLabPublisher, Provider
from .base import (
    ClaimMismatch,
    ProviderRules,
    bind_or_compare,
    claim_str,
    ref_after,
    require_environment,
)
from .spec import ENVIRONMENT_OPTION, CliOption, Column, ProviderSpec, Split


def _issuer_host(issuer: TrustedIssuer) -> str:
    return issuer.url.split("://", 1)[-1].rstrip("/")


def check_project_path(
    publisher: GitLabPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    project_path = claim_str(claims, "project_path")
    if project_path.lower() != publisher.project_path.lower():
        raise ClaimMismatch(
            "project_path", f"project path {project_path!r} is not {publisher.project_path!r}"
        )


def check_sub(publisher: GitLabPublisher, claims: dict[str, Any], issuer: TrustedIssuer) -> None:
    # Only the `project_path:<path>` prefix is stable: projects may customise the rest.
    sub = claim_str(claims, "sub")
    prefix = ":".join(sub.split(":")[:2])
    if prefix.lower() != f"project_path:{publisher.project_path}".lower():
        raise ClaimMismatch("sub", f"subject does not name project {publisher.project_path!r}")


def check_ci_config(
    publisher: GitLabPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    """`ci_config_ref_uri` is `<host>/<project path>//<config file>@<ref_path or sha>`; the host
    must be the issuer's own (the config may otherwise come from a remote URL)."""
    uri = claim_str(claims, "ci_config_ref_uri")
    expected = f"{_issuer_host(issuer)}/{publisher.project_path}//{publisher.workflow_filepath}"
    at = ref_after(uri, expected, "//" + publisher.workflow_filepath)
    if at is None:
        raise ClaimMismatch("ci_config_ref_uri", f"CI config {uri!r} is not {expected!r}")
    ref_path = claim_str(claims, "ref_path")
    sha = claim_str(claims, "sha")
    if not ref_path or not sha or at not in (ref_path, sha):
        raise ClaimMismatch(
            "ci_config_ref_uri", "CI config ref does not match the pipeline's 'ref_path' or 'sha'"
        )


def check_namespace_id(
    publisher: GitLabPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    bind_or_compare(publisher, "namespace_id", claims, "namespace_id")


def check_project_id(
    publisher: GitLabPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    bind_or_compare(publisher, "project_id", claims, "project_id")


def check_fork_pipeline(
    publisher: GitLabPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    # A merge-request pipeline from a fork runs in the parent project: job_project_id then names
    # the parent while project_id names the fork. Only pipelines of the project itself publish.
    job_project_id = claims.get("job_project_id")
    if job_project_id is not None and str(job_project_id) != str(claims.get("project_id")):
        raise ClaimMismatch(
            "job_project_id",
            "pipelines running for another project (fork merge requests) cannot publish",
        )


def check_environment(
    publisher: GitLabPublisher, claims: dict[str, Any], issuer: TrustedIssuer
) -> None:
    # GitLab environments are case-sensitive.
    require_environment(publisher, claims, "GitLab", case_sensitive=True)


class GitLabRules(ProviderRules):
    provider = Provider.GITLAB
    model = GitLabPublisher
    requires_jti = True
    required_claims = (
        "sub",
        "project_path",
        "ci_config_ref_uri",
        "ref_path",
        "sha",
        "namespace_id",
        "project_id",
    )
    lookup_claims = ("project_path",)
    checks = (
        ("project_path", check_project_path),
        ("sub", check_sub),
        ("ci_config_ref_uri", check_ci_config),
        ("namespace_id", check_namespace_id),
        ("project_id", check_project_id),
        ("job_project_id", check_fork_pipeline),
        ("environment", check_environment),
    )
    snapshot_claims = (
        "project_path",
        "namespace_id",
        "project_id",
        "ref_path",
        "sha",
        "ci_config_ref_uri",
        "environment",
        "pipeline_id",
        "pipeline_source",
        "job_id",
        "user_login",
        "runner_environment",
    )
    bound_ids = ("namespace_id", "project_id")
    run_id_claim = "pipeline_id"

    def subject(self, claims: dict[str, Any]) -> str:
        return str(claims.get("project_path", "")).lower()

    def specificity(self, publisher: GitLabPublisher) -> int:
        return 1 if publisher.environment else 0


# --- registration (PyPI's rules, see warehouse/oidc/forms) --------------------------------------
NAMESPACE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_./+]*[a-zA-Z0-9]$")
PROJECT_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*[a-zA-Z0-9]$")
NO_CONSECUTIVE_SPECIALS_RE = re.compile(r"^(?!.*[._-]{2})")
ENVIRONMENT_RE = re.compile(r"^[a-zA-Z0-9\-_/${} ]+$")


class GitLabPublisherForm(PublisherForm):
    class Meta:
        model = GitLabPublisher
        fields = ["issuer", "namespace", "project", "workflow_filepath", "environment", "enabled"]
        help_texts = {
            "namespace": _("Group or user path, e.g. acme or acme/platform."),
            "workflow_filepath": _("Path of the CI config in the repository, e.g. .gitlab-ci.yml."),
            "environment": _("Optional (case-sensitive); empty allows any."),
        }

    @staticmethod
    def _check_path_part(value: str, pattern: re.Pattern[str], what: str) -> str:
        value = value.strip()
        if not pattern.match(value) or not NO_CONSECUTIVE_SPECIALS_RE.match(value):
            raise ValidationError(_("Invalid %(what)s name."), params={"what": what})
        if value.lower().endswith((".git", ".atom")):
            raise ValidationError(
                _("%(what)s name may not end with .git or .atom."), params={"what": what}
            )
        return value

    def clean_namespace(self) -> str:
        return self._check_path_part(self.cleaned_data["namespace"], NAMESPACE_RE, "namespace")

    def clean_project(self) -> str:
        return self._check_path_part(self.cleaned_data["project"], PROJECT_RE, "project")

    def clean_workflow_filepath(self) -> str:
        path = self.cleaned_data["workflow_filepath"].strip()
        validate_workflow_suffix(path, _("CI config file path"))
        if path.startswith("/") or path.endswith("/"):
            raise ValidationError(_("CI config file path may not start or end with '/'."))
        return path

    def clean_environment(self) -> str:
        env = self.cleaned_data.get("environment") or ""
        if not env.strip():
            return ""
        if not ENVIRONMENT_RE.match(env):
            raise ValidationError(
                _("Environment name may contain only letters, digits, spaces and - _ / $ { }.")
            )
        return env


GITLAB = ProviderSpec(
    rules=GitLabRules(),
    form=GitLabPublisherForm,
    public_issuers=("https://gitlab.com",),
    cli_options=(
        CliOption(
            "repository",
            Split(
                ("namespace", "project"), "GROUP/PROJECT", "acme/tools/widgets", at_last_slash=True
            ),
            help="GROUP/PROJECT (GitLab)",
        ),
        CliOption("workflow", "workflow_filepath", help="CI config path (GitLab)"),
        ENVIRONMENT_OPTION,
    ),
    admin_columns=(
        Column("project_path", _("project path")),
        "workflow_filepath",
        "environment",
        "issuer_name",
    ),
    admin_search=("workflow_filepath",),
)
