"""GitLab CI/CD claim rules (public and self-managed issuers) through the mint endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.models import GitLabPublisher, IssuedToken
from trusted_publishing.testing import TestIssuer

from .support import (
    assert_fake_issuer_knows,
    assert_known_claims_partition,
    assert_minted,
    assert_problem,
    assert_refused,
    gitlab_publisher,
    make_issuer,
    post_mint,
    without,
)

SHA = "714a629c0b401fdce83e847fc9589983fc6f46bc"
CONFIG = "gitlab.test/acme/widgets//.gitlab-ci.yml"


@pytest.fixture
def issuer(db: Any) -> TestIssuer:
    return make_issuer("gitlab")


@pytest.fixture
def publisher(issuer: TestIssuer) -> GitLabPublisher:
    return gitlab_publisher(issuer)


def test_valid_token_mints(client: Any, issuer: TestIssuer, publisher: GitLabPublisher) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.gitlab_claims())))
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == publisher.pk
    assert issued.subject == "acme/widgets"
    assert issued.run_id == "574"  # the pipeline id
    assert issued.claims["ci_config_ref_uri"] == f"{CONFIG}@refs/tags/v1.0.0"


def test_project_path_and_config_match_case_insensitively_except_the_file(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher
) -> None:
    claims = issuer.gitlab_claims(
        project_path="ACME/Widgets",
        ci_config_ref_uri="gitlab.test/ACME/Widgets//.gitlab-ci.yml@refs/tags/v1.0.0",
    )
    assert_minted(post_mint(client, issuer.sign(claims)))


def test_config_at_the_commit_sha_is_accepted(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher
) -> None:
    claims = issuer.gitlab_claims(ci_config_ref_uri=f"{CONFIG}@{SHA}")
    assert_minted(post_mint(client, issuer.sign(claims)))


# Wrong values of the claims the rules compare are rows of the hostile-token table
# (tests/security/test_hostile_tokens.py, ids "gitlab-...").


REQUIRED = [
    "sub",
    "project_path",
    "ci_config_ref_uri",
    "ref_path",
    "sha",
    "namespace_id",
    "project_id",
    "jti",
]


@pytest.mark.parametrize("claim", REQUIRED)
def test_missing_claim_is_refused(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher, claim: str
) -> None:
    claims = without(issuer.gitlab_claims(), claim)
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert claim in body["detail"]


# --- immutable ids ---------------------------------------------------------------------------
@pytest.mark.parametrize("claim", ["namespace_id", "project_id"])
def test_ids_bound_on_first_use_then_enforced(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher, claim: str
) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.gitlab_claims())))
    publisher.refresh_from_db()
    assert (publisher.namespace_id, publisher.project_id) == ("72", "20")
    extra = {"job_project_id": "99"} if claim == "project_id" else {}
    resurrected = issuer.gitlab_claims(**{claim: "99"}, **extra)
    body = assert_problem(post_mint(client, issuer.sign(resurrected)), 422, "invalid-publisher")
    assert claim in body["detail"]
    assert IssuedToken.objects.count() == 1


@pytest.mark.parametrize("field", ["namespace_id", "project_id"])
def test_preregistered_id_must_match(client: Any, issuer: TestIssuer, field: str) -> None:
    gitlab_publisher(issuer, **{field: "5"})
    extra = {"job_project_id": "6"} if field == "project_id" else {}
    claims = issuer.gitlab_claims(**{field: "6"}, **extra)
    assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")


# --- environments (case-sensitive on GitLab) -----------------------------------------------
def test_environment_must_match_exactly(client: Any, issuer: TestIssuer) -> None:
    gitlab_publisher(issuer, environment="Production")
    for wrong in ("production", "PRODUCTION", "staging"):
        claims = issuer.gitlab_claims(environment=wrong)
        assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert_minted(post_mint(client, issuer.sign(issuer.gitlab_claims(environment="Production"))))


def test_environment_publisher_refuses_token_without_environment(
    client: Any, issuer: TestIssuer
) -> None:
    gitlab_publisher(issuer, environment="production")
    body = assert_refused(
        post_mint(client, issuer.sign(issuer.gitlab_claims())), 422, "invalid-publisher"
    )
    assert "environment" in body["detail"]


def test_unconstrained_publisher_accepts_any_environment(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher
) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.gitlab_claims(environment="review/x"))))


# --- self-managed instances ------------------------------------------------------------------
def test_self_managed_issuer_mints_for_its_own_publishers(client: Any, db: Any) -> None:
    own = make_issuer("gitlab", "https://gitlab.acme.internal")
    publisher = gitlab_publisher(own)
    claims = own.gitlab_claims()
    assert claims["ci_config_ref_uri"].startswith("gitlab.acme.internal/acme/widgets//")
    assert_minted(post_mint(client, own.sign(claims)))
    assert IssuedToken.objects.get().publisher_id == publisher.pk


def test_self_managed_tokens_do_not_match_a_gitlab_com_publisher(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher
) -> None:
    other = make_issuer("gitlab", "https://gitlab.acme.internal")
    # Same project path, even a ci_config_ref_uri naming the public host: still another issuer.
    for claims in (
        other.gitlab_claims(),
        other.gitlab_claims(ci_config_ref_uri=f"{CONFIG}@refs/tags/v1.0.0"),
    ):
        assert_refused(post_mint(client, other.sign(claims)), 422, "invalid-publisher")
    # And the public instance's tokens never match the self-managed publisher either.
    gitlab_publisher(other, projects=("internal-widgets",))
    assert_minted(post_mint(client, issuer.sign(issuer.gitlab_claims())))
    assert IssuedToken.objects.get().projects == ["widgets"]


# --- known claims (pinned, as Warehouse pins ``all_known_claims``) --------------------------
#: Every claim a GitLab CI token carries (GitLab's JwtV2 claim mapper; PyPI's list).
ALL_KNOWN_CLAIMS = frozenset(
    {
        # registered, and GitLab's second audience
        *("iss", "aud", "exp", "iat", "nbf", "jti", "sub", "target_audience"),
        # the project (source) and where the job runs (differ for fork merge requests)
        *("namespace_id", "namespace_path", "project_id", "project_path", "project_visibility"),
        *("job_namespace_id", "job_namespace_path", "job_project_id", "job_project_path"),
        # who triggered the pipeline
        *("user_id", "user_login", "user_email", "user_access_level", "user_identities"),
        "groups_direct",
        # the pipeline, the job and the ref
        *("pipeline_id", "pipeline_source", "job_id", "job_source"),
        *("ref", "ref_type", "ref_path", "ref_protected", "sha"),
        *("ci_config_ref_uri", "ci_config_sha", "runner_id", "runner_environment"),
        # the deployment environment
        *("environment", "environment_protected", "deployment_tier", "environment_action"),
    }
)
#: Claims the rules look at (see tests/providers/support.py::checked_claims).
CHECKED_CLAIMS = frozenset(
    {
        *("iss", "aud", "exp", "iat", "nbf", "jti", "sub"),
        *("project_path", "ci_config_ref_uri", "ref_path", "sha"),
        *("namespace_id", "project_id", "job_project_id", "environment"),
    }
)
#: Claims only copied into the token snapshot and the audit trail.
SNAPSHOT_CLAIMS = frozenset(
    {"pipeline_id", "pipeline_source", "job_id", "user_login", "runner_environment"}
)
#: Claims this index deliberately ignores, each with its reason (also in docs/providers/gitlab.md).
IGNORED_CLAIMS = {
    "target_audience": "a second audience for cloud IAM federation; aud must be this index's "
    "audience",
    "namespace_path": "the group part of project_path, which is checked",
    "job_namespace_id": "differs from namespace_id only in fork merge request pipelines, refused "
    "through job_project_id",
    "job_namespace_path": "differs from namespace_path only in fork merge request pipelines, "
    "refused through job_project_id",
    "job_project_path": "differs from project_path only in fork merge request pipelines, refused "
    "through job_project_id",
    "user_id": "who triggered the pipeline does not decide who may publish; user_login is in the "
    "audit trail",
    "user_email": "personal data; user_login identifies the user in the audit trail",
    "user_access_level": "the triggering user's role; protect the publisher's environment instead",
    "user_identities": "the triggering user's linked external accounts, not the workload",
    "groups_direct": "the triggering user's groups (behind a GitLab feature flag), not the "
    "workload",
    "ref": "the bare branch or tag name is ambiguous; ref_path is checked instead",
    "ref_type": "follows from ref_path, which is checked",
    "ref_protected": "branch protection is the project's policy; protect the publisher's "
    "environment instead",
    "environment_protected": "protection is the project's setting; the publisher's environment "
    "is compared by name",
    "deployment_tier": "a label of the environment set in the CI file; the environment name is "
    "compared",
    "environment_action": "what the job does to the environment (start, prepare, stop); the "
    "environment name is compared",
    "runner_id": "which runner ran the job; runner_environment is in the audit trail",
    "project_visibility": "public or private does not change who may publish",
    "ci_config_sha": "the commit of the top-level CI file; ci_config_ref_uri is checked against "
    "ref_path and sha",
    "job_source": "how the job was created; the pipeline's CI file (ci_config_ref_uri) is checked",
}


def test_every_known_claim_is_checked_stored_or_ignored() -> None:
    assert_known_claims_partition(
        "gitlab", ALL_KNOWN_CLAIMS, CHECKED_CLAIMS, SNAPSHOT_CLAIMS, IGNORED_CLAIMS
    )


def test_the_fake_issuer_knows_the_same_claims() -> None:
    assert_fake_issuer_knows("gitlab", ALL_KNOWN_CLAIMS)
