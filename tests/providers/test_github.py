"""GitHub Actions claim rules, proved through POST /_/oidc/mint-token with signed tokens."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import GitHubPublisher, IssuedToken
from trusted_publishing.testing import TestIssuer

from .support import (
    assert_fake_issuer_knows,
    assert_known_claims_partition,
    assert_minted,
    assert_problem,
    assert_refused,
    github_publisher,
    last_failure,
    make_issuer,
    post_mint,
    without,
)

SHA = "714a629c0b401fdce83e847fc9589983fc6f46bc"
WORKFLOWS = "acme/widgets/.github/workflows"


@pytest.fixture
def issuer(db: Any) -> TestIssuer:
    return make_issuer("github")


@pytest.fixture
def publisher(issuer: TestIssuer) -> GitHubPublisher:
    return github_publisher(issuer)


def test_valid_token_mints_for_the_publishers_projects(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher
) -> None:
    claims = issuer.github_claims(run_id="4242")
    token = assert_minted(post_mint(client, issuer.sign(claims)))
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == publisher.pk
    assert issued.projects == ["widgets"]
    assert issued.subject == "acme/widgets"
    assert issued.run_id == "4242"
    assert token not in str(issued.__dict__)


# --- wrong values ---------------------------------------------------------------------------
# Wrong values of the claims the rules compare are rows of the hostile-token table
# (tests/security/test_hostile_tokens.py, ids "github-...").


@pytest.mark.parametrize(
    "field,claim,bound,wrong",
    [
        ("repository_owner_id", "repository_owner_id", "1001", "6666"),
        ("repository_id", "repository_id", "2002", "3003"),
    ],
)
def test_preregistered_immutable_id_must_match(
    client: Any, issuer: TestIssuer, field: str, claim: str, bound: str, wrong: str
) -> None:
    github_publisher(issuer, **{field: bound})
    claims = issuer.github_claims(**{claim: wrong})
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert claim in body["detail"]
    assert_minted(post_mint(client, issuer.sign(issuer.github_claims(**{claim: bound}))))


# --- missing claims -------------------------------------------------------------------------
REQUIRED = [
    "repository",
    "repository_owner",
    "repository_owner_id",
    "repository_id",
    "job_workflow_ref",
    "ref",
    "sha",
    "event_name",
    "jti",
]


@pytest.mark.parametrize("claim", REQUIRED)
def test_missing_claim_is_refused(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher, claim: str
) -> None:
    claims = without(issuer.github_claims(), claim)
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert claim in body["detail"]


@pytest.mark.parametrize("claim", ["repository_owner_id", "repository_id", "jti"])
def test_empty_or_non_string_claim_is_refused(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher, claim: str
) -> None:
    for bad in ("", 1001):
        claims = {**issuer.github_claims(), claim: bad}
        # PyJWT itself rejects a non-string jti while verifying (invalid-token).
        code = "invalid-token" if claim == "jti" and bad == 1001 else "invalid-publisher"
        assert_refused(post_mint(client, issuer.sign(claims)), 422, code)


# --- resurrection: ids bound on first use ---------------------------------------------------
@pytest.mark.parametrize("claim", ["repository_owner_id", "repository_id"])
def test_resurrected_owner_or_repository_cannot_publish(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher, claim: str
) -> None:
    assert publisher.repository_owner_id == publisher.repository_id == ""
    assert_minted(post_mint(client, issuer.sign(issuer.github_claims())))
    publisher.refresh_from_db()
    assert (publisher.repository_owner_id, publisher.repository_id) == ("1001", "2002")

    # Same names, but the account/repository was deleted and re-created: new numeric id.
    resurrected = issuer.github_claims(**{claim: "7777"})
    body = assert_problem(post_mint(client, issuer.sign(resurrected)), 422, "invalid-publisher")
    assert claim in body["detail"]
    assert IssuedToken.objects.count() == 1
    # The genuine owner still publishes.
    assert_minted(post_mint(client, issuer.sign(issuer.github_claims())))


# --- workflow ref / sha ---------------------------------------------------------------------
def test_job_workflow_ref_at_the_commit_sha_is_accepted(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher
) -> None:
    claims = issuer.github_claims(job_workflow_ref=f"{WORKFLOWS}/release.yml@{SHA}", ref="")
    assert_minted(post_mint(client, issuer.sign(claims)))


def test_same_repository_reusable_workflow_is_matched_by_the_called_file(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher
) -> None:
    # ci.yml calls release.yml from the same repository: job_workflow_ref names release.yml.
    claims = issuer.github_claims(workflow_ref=f"{WORKFLOWS}/ci.yml@refs/tags/v1.0.0")
    assert_minted(post_mint(client, issuer.sign(claims)))


@pytest.mark.parametrize("event", ["push", "release", "workflow_dispatch", "pull_request"])
def test_ordinary_events_are_accepted(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher, event: str
) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.github_claims(event_name=event))))


def test_denied_events_follow_the_setting(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher
) -> None:
    with override_tp_settings(GITHUB_DENIED_EVENTS=["pull_request_target", "workflow_run", "push"]):
        response = post_mint(client, issuer.sign(issuer.github_claims(event_name="push")))
    assert_refused(response, 422, "invalid-publisher")


# --- environments ---------------------------------------------------------------------------
@pytest.mark.parametrize("token_env", ["pypi", "PyPI", "PYPI"])
def test_environment_matches_case_insensitively(
    client: Any, issuer: TestIssuer, token_env: str
) -> None:
    github_publisher(issuer, environment="PyPI")
    assert_minted(post_mint(client, issuer.sign(issuer.github_claims(environment=token_env))))


# Refusals (another environment, none, an empty one) are rows of the hostile-token table.


def test_token_environment_with_unconstrained_publisher_is_accepted(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher
) -> None:
    assert_minted(post_mint(client, issuer.sign(issuer.github_claims(environment="anything"))))


def test_environment_constrained_publisher_wins_over_unconstrained(
    client: Any, issuer: TestIssuer
) -> None:
    github_publisher(issuer, projects=("widgets-nightly",))
    constrained = github_publisher(issuer, projects=("widgets",), environment="pypi")
    assert_minted(post_mint(client, issuer.sign(issuer.github_claims(environment="pypi"))))
    issued = IssuedToken.objects.get()
    assert issued.publisher_id == constrained.pk
    assert issued.projects == ["widgets"]


# --- issuer binding -------------------------------------------------------------------------
def test_publisher_only_accepts_tokens_of_its_own_issuer(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher
) -> None:
    # A GitHub Enterprise Server registered as another github issuer signs the same claims.
    ghes = make_issuer("github", "https://ghes.test/_services/token")
    response = post_mint(client, ghes.sign(ghes.github_claims()))
    assert_refused(response, 422, "invalid-publisher")
    assert last_failure().issuer_url == ghes.url


def test_disabled_publisher_does_not_match(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher
) -> None:
    publisher.enabled = False
    publisher.save()
    assert_refused(post_mint(client, issuer.sign(issuer.github_claims())), 422, "invalid-publisher")


# --- known claims (pinned, as Warehouse pins ``all_known_claims``) --------------------------
#: Every claim a GitHub Actions token carries (GitHub's claims_supported and docs; PyPI's list).
ALL_KNOWN_CLAIMS = frozenset(
    {
        # registered
        *("iss", "aud", "exp", "iat", "nbf", "jti", "sub"),
        # the repository and its owner
        *("repository", "repository_id", "repository_owner", "repository_owner_id"),
        *("repository_visibility", "enterprise", "enterprise_id", "issuer_scope"),
        # what ran, from which ref
        *("ref", "ref_type", "ref_protected", "sha", "head_ref", "base_ref", "event_name"),
        *("workflow", "workflow_ref", "workflow_sha", "job_workflow_ref", "job_workflow_sha"),
        *("environment", "environment_node_id", "runner_environment"),
        # the run and who started it
        *("run_id", "run_number", "run_attempt", "check_run_id", "actor", "actor_id"),
        # organisation custom properties: repo_property_<name>
        "repo_property_*",
    }
)
#: Claims the rules look at (see tests/providers/support.py::checked_claims).
CHECKED_CLAIMS = frozenset(
    {
        *("iss", "aud", "exp", "iat", "nbf", "jti"),
        *("repository", "repository_owner", "repository_owner_id", "repository_id"),
        *("job_workflow_ref", "ref", "sha", "event_name", "environment"),
    }
)
#: Claims only copied into the token snapshot and the audit trail.
SNAPSHOT_CLAIMS = frozenset(
    {"workflow_ref", "run_id", "run_attempt", "actor", "runner_environment"}
)
#: Claims this index deliberately ignores, each with its reason (also in docs/providers/github.md).
IGNORED_CLAIMS = {
    "sub": "repositories can customise its format; what it says is checked through repository, "
    "job_workflow_ref and environment",
    "enterprise": "the repository and its owner id identify the workload; an enterprise's own "
    "issuer is told apart by the exact iss",
    "enterprise_id": "the repository and its owner id identify the workload; an enterprise's own "
    "issuer is told apart by the exact iss",
    "issuer_scope": "listed in GitHub's claims_supported but undocumented",
    "repository_visibility": "public or private does not change who may publish",
    "ref_type": "follows from ref (refs/tags/ or refs/heads/), which job_workflow_ref must name",
    "ref_protected": "branch protection is the repository's policy; protect the publisher's "
    "environment instead",
    "head_ref": "the source branch of a pull request; the workflow file at ref or sha, and the "
    "environment, decide who may publish",
    "base_ref": "the target branch of a pull request; the workflow file at ref or sha, and the "
    "environment, decide who may publish",
    "workflow": "the workflow's free-text display name; job_workflow_ref names the file",
    "workflow_sha": "the commit of the calling workflow; job_workflow_ref is checked against ref "
    "and sha",
    "job_workflow_sha": "the commit of the job's workflow file; job_workflow_ref is checked "
    "against ref and sha",
    "environment_node_id": "GitHub's internal id of the environment; publishers name "
    "environments, compared by name",
    "run_number": "a counter per workflow; run_id and run_attempt identify the run in the audit "
    "trail",
    "check_run_id": "the job's check run; run_id and run_attempt identify the run in the audit "
    "trail",
    "actor_id": "who triggered the run does not decide who may publish; actor (the name) is in "
    "the audit trail",
    "repo_property_*": "custom properties an organisation defines freely, not an identity",
}


def test_every_known_claim_is_checked_stored_or_ignored() -> None:
    assert_known_claims_partition(
        "github", ALL_KNOWN_CLAIMS, CHECKED_CLAIMS, SNAPSHOT_CLAIMS, IGNORED_CLAIMS
    )


def test_the_fake_issuer_knows_the_same_claims() -> None:
    assert_fake_issuer_knows("github", ALL_KNOWN_CLAIMS)
