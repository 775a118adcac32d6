"""GitLab CI/CD claim rules (public and self-managed issuers) through the mint endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.models import GitLabPublisher, IssuedToken
from trusted_publishing.testing import TestIssuer

from .support import (
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


WRONG_VALUES = {
    "project_path": {"project_path": "acme/gadgets"},
    "sub: another project": {"sub": "project_path:evil/widgets:ref_type:tag:ref:v1.0.0"},
    "sub: not a project_path subject": {"sub": "acme/widgets"},
    "ci_config_ref_uri: wrong file": {
        "ci_config_ref_uri": "gitlab.test/acme/widgets//other.yml@refs/tags/v1.0.0"
    },
    "ci_config_ref_uri: file name case": {
        "ci_config_ref_uri": "gitlab.test/acme/widgets//.GITLAB-CI.yml@refs/tags/v1.0.0"
    },
    "ci_config_ref_uri: wrong host": {
        "ci_config_ref_uri": "gitlab.com/acme/widgets//.gitlab-ci.yml@refs/tags/v1.0.0"
    },
    "ci_config_ref_uri: remote config host": {
        "ci_config_ref_uri": "evil.example/acme/widgets//.gitlab-ci.yml@refs/tags/v1.0.0"
    },
    "ci_config_ref_uri: another project": {
        "ci_config_ref_uri": "gitlab.test/evil/widgets//.gitlab-ci.yml@refs/tags/v1.0.0"
    },
    "ci_config_ref_uri: wrong ref": {"ci_config_ref_uri": f"{CONFIG}@refs/heads/attacker"},
    "ci_config_ref_uri: no ref": {"ci_config_ref_uri": CONFIG},
    "ci_config_ref_uri: empty ref_path and sha": {
        "ci_config_ref_uri": f"{CONFIG}@",
        "ref_path": "",
        "sha": "",
    },
    "job_project_id: fork merge request pipeline": {"job_project_id": "21"},
}


@pytest.mark.parametrize("overrides", WRONG_VALUES.values(), ids=WRONG_VALUES.keys())
def test_wrong_claim_value_is_refused(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher, overrides: dict[str, Any]
) -> None:
    claims = {**issuer.gitlab_claims(), **overrides}
    assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")


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


def test_fork_pipeline_check_also_rejects_a_mismatched_job_project_from_the_parent(
    client: Any, issuer: TestIssuer, publisher: GitLabPublisher
) -> None:
    # The fork's project id is the token's project_id; the job runs in the parent (job_project_id).
    claims = issuer.gitlab_claims(project_id="20", job_project_id="999")
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert "fork" in body["detail"]


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
