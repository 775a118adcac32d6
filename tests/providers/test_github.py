"""GitHub Actions claim rules, proved through POST /_/oidc/mint-token with signed tokens."""

from __future__ import annotations

from typing import Any

import pytest

from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import GitHubPublisher, IssuedToken
from trusted_publishing.testing import TestIssuer

from .support import (
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
WRONG_VALUES = {
    "repository: another repository": {"repository": "acme/gadgets"},
    "repository: another owner's repository": {"repository": "evil/widgets"},
    "repository_owner": {"repository_owner": "evil"},
    "workflow: another file in the repository": {
        "job_workflow_ref": f"{WORKFLOWS}/other.yml@refs/tags/v1.0.0"
    },
    "workflow: file name differs in case": {
        "job_workflow_ref": f"{WORKFLOWS}/Release.yml@refs/tags/v1.0.0"
    },
    "workflow: reusable workflow from another repository": {
        "job_workflow_ref": "evil/tools/.github/workflows/release.yml@refs/tags/v1.0.0"
    },
    "workflow: ref matches neither ref nor sha": {
        "job_workflow_ref": f"{WORKFLOWS}/release.yml@refs/heads/attacker"
    },
    "workflow: no ref at all": {"job_workflow_ref": f"{WORKFLOWS}/release.yml"},
    "event_name: pull_request_target": {"event_name": "pull_request_target"},
    "event_name: workflow_run": {"event_name": "workflow_run"},
}


@pytest.mark.parametrize("overrides", WRONG_VALUES.values(), ids=WRONG_VALUES.keys())
def test_wrong_claim_value_is_refused(
    client: Any, issuer: TestIssuer, publisher: GitHubPublisher, overrides: dict[str, Any]
) -> None:
    claims = {**issuer.github_claims(), **overrides}
    assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")


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


def test_publisher_environment_refuses_other_environment(client: Any, issuer: TestIssuer) -> None:
    github_publisher(issuer, environment="pypi")
    claims = issuer.github_claims(environment="staging")
    body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
    assert "environment" in body["detail"]


def test_publisher_environment_refuses_token_without_environment(
    client: Any, issuer: TestIssuer
) -> None:
    github_publisher(issuer, environment="pypi")
    for claims in (issuer.github_claims(), issuer.github_claims(environment="")):
        body = assert_refused(post_mint(client, issuer.sign(claims)), 422, "invalid-publisher")
        assert "environment" in body["detail"]


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
