"""pytest fixtures for testing an index that uses django-trusted-publishing.

Installed with the package and registered through the ``pytest11`` entry point
(``trusted_publishing``), so an index's own tests can use them without any ``conftest.py``::

    def test_ci_can_publish(client, tp_publisher, tp_github_token):
        tp_publisher("widgets", repository="acme/widgets", workflow="release.yml")
        response = client.post("/_/oidc/mint-token", {"token": tp_github_token()},
                               content_type="application/json")
        assert response.status_code == 200

* ``tp_issuer`` / ``tp_gitlab_issuer``: a :class:`~trusted_publishing.testing.TestIssuer`
  registered as a trusted issuer of the test database, with static keys (no network);
* ``tp_github_token(repository, workflow, environment=None, **claims)`` /
  ``tp_gitlab_token(project_path, ci_config, environment=None, **claims)``: a signed identity
  token whose ``aud`` is the configured ``TRUSTED_PUBLISHING["AUDIENCE"]``;
* ``tp_publisher(projects, provider="github", ...)``: a trusted publisher for those projects;
* ``tp_mint(token)``: the upload token the index's mint endpoint exchanges it for.

Nothing here imports Django or touches a database until a fixture is used, so the plugin is
harmless in test runs without pytest-django or without Django settings. Disable it with
``-p no:trusted_publishing``. Documented in docs/testing.md.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from trusted_publishing.models import Publisher
    from trusted_publishing.testing import TestIssuer

#: Issuer URLs of the issuers the fixtures register (override the ``tp_*_issuer_url`` fixtures
#: for GitHub Enterprise or a self-managed GitLab).
GITHUB_ISSUER_URL = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER_URL = "https://gitlab.com"

#: Default identity of the fixtures' CI job and publisher.
DEFAULT_REPOSITORY = "acme/widgets"
DEFAULT_WORKFLOW = {"github": "release.yml", "gitlab": ".gitlab-ci.yml"}


@functools.cache
def _session_key(provider: str) -> rsa.RSAPrivateKey:
    """One RSA key per provider and test session: generating a key costs ~50 ms."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _Database:
    """``_tp_db``: pytest-django's ``db``, for the fixtures that write to the test database.

    Declared statically (not through ``request.getfixturevalue("db")``): pytest-django creates
    the test database only when a collected test's fixture closure names ``db``.
    """

    @pytest.fixture
    def _tp_db(self, db: None) -> None:
        return None


class _NoDatabase:
    @pytest.fixture
    def _tp_db(self) -> None:
        pytest.fail(
            "tp_issuer, tp_gitlab_issuer, tp_publisher and the trusted_publishing fixtures "
            "built on them write to the test database: they need pytest-django "
            "(pip install pytest-django, and set DJANGO_SETTINGS_MODULE)",
            pytrace=False,
        )


def pytest_configure(config: pytest.Config) -> None:
    manager = config.pluginmanager
    has_django = manager.hasplugin("django") or manager.hasplugin("pytest_django.plugin")
    config.pluginmanager.register(
        _Database() if has_django else _NoDatabase(), "trusted_publishing-database"
    )


def _registered_issuer(provider: str, url: str) -> TestIssuer:
    from trusted_publishing.testing import TestIssuer

    issuer = TestIssuer(url, kid=f"tp-pytest-{provider}", private_key=_session_key(provider))
    issuer.register(provider, name=f"{provider} issuer (pytest)")
    return issuer


# --- issuers ---------------------------------------------------------------------------------
@pytest.fixture
def tp_issuer_url() -> str:
    """The GitHub issuer's URL (``iss``). Override it for GitHub Enterprise Server."""
    return GITHUB_ISSUER_URL


@pytest.fixture
def tp_gitlab_issuer_url() -> str:
    """The GitLab issuer's URL (``iss``). Override it for a self-managed GitLab."""
    return GITLAB_ISSUER_URL


@pytest.fixture
def tp_issuer(_tp_db: None, tp_issuer_url: str) -> TestIssuer:
    """A GitHub Actions issuer, registered (static keys) in the test database."""
    return _registered_issuer("github", tp_issuer_url)


@pytest.fixture
def tp_gitlab_issuer(_tp_db: None, tp_gitlab_issuer_url: str) -> TestIssuer:
    """A GitLab CI/CD issuer, registered (static keys) in the test database."""
    return _registered_issuer("gitlab", tp_gitlab_issuer_url)


# --- identity tokens -------------------------------------------------------------------------
@pytest.fixture
def tp_github_token(tp_issuer: TestIssuer) -> Callable[..., str]:
    """``tp_github_token(repository="acme/widgets", workflow="release.yml", environment=None,
    **claims)``: a GitHub Actions identity token for the configured audience.

    ``claims`` are :meth:`TestIssuer.github_claims` keywords: ``ref=``, ``event_name=``,
    ``audience=``, ``lifetime=``, ``extra_claims=``, or any claim a GitHub token carries.
    """

    def make(
        repository: str = DEFAULT_REPOSITORY,
        workflow: str = DEFAULT_WORKFLOW["github"],
        environment: str | None = None,
        **claims: Any,
    ) -> str:
        return tp_issuer.sign(
            tp_issuer.github_claims(repository, workflow, environment=environment, **claims)
        )

    return make


@pytest.fixture
def tp_gitlab_token(tp_gitlab_issuer: TestIssuer) -> Callable[..., str]:
    """``tp_gitlab_token(project_path="acme/widgets", ci_config=".gitlab-ci.yml",
    environment=None, **claims)``: a GitLab CI/CD identity token for the configured audience.

    ``claims`` are :meth:`TestIssuer.gitlab_claims` keywords: ``ref_path=``, ``audience=``,
    ``lifetime=``, ``extra_claims=``, or any claim a GitLab token carries.
    """

    def make(
        project_path: str = DEFAULT_REPOSITORY,
        ci_config: str = DEFAULT_WORKFLOW["gitlab"],
        environment: str | None = None,
        **claims: Any,
    ) -> str:
        return tp_gitlab_issuer.sign(
            tp_gitlab_issuer.gitlab_claims(
                project_path, ci_config, environment=environment, **claims
            )
        )

    return make


# --- publishers ------------------------------------------------------------------------------
@pytest.fixture
def tp_publisher(request: pytest.FixtureRequest, _tp_db: None) -> Callable[..., Publisher]:
    """``tp_publisher(projects="widgets", *, provider="github", repository="acme/widgets",
    workflow=None, environment="", pending=False, **fields)``: a trusted publisher.

    ``projects`` is one name or several. For ``provider="gitlab"``, ``repository`` is the project
    path and ``workflow`` the CI config file (default ``.gitlab-ci.yml``; GitHub:
    ``release.yml``). ``pending=True`` makes a pending publisher (its first publish creates the
    projects). ``fields`` go to the model (``enabled=False``, ``repository_id="2002"``, ...).
    The issuer is ``tp_issuer`` / ``tp_gitlab_issuer``, so the ``tp_*_token`` tokens match.
    """
    def make(
        projects: str | Iterable[str] = ("widgets",),
        *,
        provider: str = "github",
        repository: str = DEFAULT_REPOSITORY,
        workflow: str | None = None,
        environment: str = "",
        pending: bool = False,
        **fields: Any,
    ) -> Publisher:
        from datetime import timedelta

        from django.utils import timezone

        from trusted_publishing.conf import tp_settings
        from trusted_publishing.models import GitHubPublisher, GitLabPublisher, TrustedIssuer

        if provider not in DEFAULT_WORKFLOW:
            raise ValueError(f"tp_publisher() makes github or gitlab publishers, not {provider!r}")
        names = [projects] if isinstance(projects, str) else list(projects)
        fixture = "tp_issuer" if provider == "github" else "tp_gitlab_issuer"
        issuer = TrustedIssuer.objects.get(url=request.getfixturevalue(fixture).url)
        if pending:
            fields.setdefault(
                "pending_expires_at",
                timezone.now() + timedelta(seconds=tp_settings.PENDING_PUBLISHER_LIFETIME),
            )
        owner, _, name = repository.rpartition("/")
        if not owner:
            raise ValueError(f"repository={repository!r} is not '<owner>/<name>'")
        workflow = workflow or DEFAULT_WORKFLOW[provider]
        publisher: Publisher
        if provider == "github":
            publisher = GitHubPublisher.objects.create(
                issuer=issuer,
                repository_owner=owner,
                repository_name=name,
                workflow_filename=workflow,
                environment=environment,
                **fields,
            )
        else:
            publisher = GitLabPublisher.objects.create(
                issuer=issuer,
                namespace=owner,
                project=name,
                workflow_filepath=workflow,
                environment=environment,
                **fields,
            )
        publisher.add_projects(names)
        return publisher

    return make


# --- exchange --------------------------------------------------------------------------------
@pytest.fixture
def tp_mint(request: pytest.FixtureRequest, _tp_db: None) -> Callable[..., str]:
    """``tp_mint(identity_token, **body)``: POST it to the index's mint endpoint with the Django
    test client and return the upload token (``pypi-...``); fails the test unless it is 200."""

    client = request.getfixturevalue("client")

    def mint(identity_token: str, **body: Any) -> str:
        from django.urls import reverse

        response = client.post(
            reverse("trusted_publishing:mint-token"),
            json.dumps({"token": identity_token, **body}),
            content_type="application/json",
        )
        if response.status_code != 200:
            pytest.fail(
                f"mint-token answered {response.status_code}: {response.content.decode()}",
                pytrace=False,
            )
        return str(response.json()["token"])

    return mint
