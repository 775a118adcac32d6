"""trusted_publishing.contrib.pytest_plugin, as an integrator gets it: by installing the package.

Each test writes a tiny integrator project (settings, URLconf, tests) and runs pytest on it in a
subprocess, so the plugin is loaded through its ``pytest11`` entry point exactly as in an index's
own test suite, and tokens are minted through the real ``/_/oidc/mint-token`` endpoint.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

AUDIENCE = "pkgs.integrator.test"

SETTINGS = f"""
SECRET_KEY = "integrator-tests"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "integrator_urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "trusted_publishing",
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}}}
TRUSTED_PUBLISHING = {{"AUDIENCE": "{AUDIENCE}"}}
"""

URLS = """
from django.urls import include, path

urlpatterns = [path("", include("trusted_publishing.urls"))]
"""

INTEGRATOR_TESTS = f'''
import json

import jwt
import pytest


def mint(client, token):
    return client.post(
        "/_/oidc/mint-token", json.dumps({{"token": token}}), content_type="application/json"
    )


def test_github_job_publishes(client, tp_publisher, tp_github_token):
    tp_publisher("widgets", repository="acme/widgets", workflow="release.yml")
    token = tp_github_token(repository="acme/widgets", workflow="release.yml")
    claims = jwt.decode(token, options={{"verify_signature": False}})
    assert claims["aud"] == "{AUDIENCE}"
    assert claims["iss"] == "https://token.actions.githubusercontent.com"

    response = mint(client, token)

    assert response.status_code == 200, response.content
    assert response.json()["token"].startswith("pypi-")


def test_gitlab_job_with_environment_publishes(client, tp_publisher, tp_gitlab_token):
    tp_publisher("kit", provider="gitlab", repository="acme/tools/kit", environment="production")
    token = tp_gitlab_token("acme/tools/kit", environment="production")
    assert jwt.decode(token, options={{"verify_signature": False}})["aud"] == "{AUDIENCE}"

    assert mint(client, token).status_code == 200


def test_wrong_workflow_is_refused(client, tp_publisher, tp_github_token):
    tp_publisher("widgets", workflow="release.yml")
    response = mint(client, tp_github_token(workflow="ci.yml"))
    assert response.status_code == 422, response.content


def test_another_audience_is_refused(client, tp_publisher, tp_github_token):
    tp_publisher("widgets")
    assert mint(client, tp_github_token(audience="pypi")).status_code != 200


def test_claim_overrides_reach_the_token(tp_github_token):
    token = tp_github_token(ref="refs/heads/main", extra_claims={{"custom": 1}}, lifetime=60)
    claims = jwt.decode(token, options={{"verify_signature": False}})
    assert (claims["ref"], claims["custom"], claims["exp"] - claims["iat"]) == (
        "refs/heads/main", 1, 60
    )


def test_pending_publisher_and_tp_mint(tp_publisher, tp_github_token, tp_mint):
    publisher = tp_publisher(["new-project"], pending=True)
    assert publisher.is_pending
    assert tp_mint(tp_github_token()).startswith("pypi-")


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_work_too(tp_publisher, tp_gitlab_token, tp_mint):
    tp_publisher("widgets", provider="gitlab")
    assert tp_mint(tp_gitlab_token()).startswith("pypi-")


def test_the_issuer_is_registered_with_static_keys(tp_issuer):
    from trusted_publishing.models import TrustedIssuer

    row = TrustedIssuer.objects.get(url=tp_issuer.url)
    assert (row.provider, row.key_source) == ("github", "static")
    assert row.static_jwks == tp_issuer.jwks()
'''

GHES_TESTS = """
import pytest


@pytest.fixture
def tp_issuer_url():
    return "https://ghe.example.internal/_services/token"


def test_github_enterprise(tp_publisher, tp_github_token, tp_mint):
    publisher = tp_publisher("widgets")
    assert publisher.issuer.url == "https://ghe.example.internal/_services/token"
    assert tp_mint(tp_github_token()).startswith("pypi-")
"""


@pytest.fixture
def integrator(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A clean environment: only what an integrator's CI would have."""
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    pytester.makeini("[pytest]\n")  # the rootdir: keeps the repository's configuration out
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", *args, timeout=240)


def test_the_entry_point_registers_the_plugin() -> None:
    [entry] = [
        ep
        for ep in importlib.metadata.entry_points(group="pytest11")
        if ep.value == "trusted_publishing.contrib.pytest_plugin"
    ]
    assert entry.name == "trusted_publishing"
    assert entry.dist is not None and entry.dist.name == "django-trusted-publishing"


def test_an_integrator_mints_through_the_real_endpoint(integrator: pytest.Pytester) -> None:
    integrator.makepyfile(
        integrator_settings=SETTINGS,
        integrator_urls=URLS,
        test_release=INTEGRATOR_TESTS,
        test_ghes=GHES_TESTS,
    )

    result = _run(integrator, "--ds=integrator_settings")

    result.assert_outcomes(passed=9)
    # Loaded from the installed distribution's entry point, not from a conftest.py.
    result.stdout.fnmatch_lines(["plugins:*django-trusted-publishing*"])


@pytest.mark.parametrize("django", ["without pytest-django", "without Django settings"])
def test_harmless_without_a_configured_django(integrator: pytest.Pytester, django: Any) -> None:
    integrator.makepyfile(
        test_plain="""
        def test_plain():
            assert 1 + 1 == 2


        def test_uses_the_database(tp_issuer):
            pass
        """
    )
    args = ["-p", "no:django"] if django == "without pytest-django" else []

    result = _run(integrator, *args)

    result.stdout.fnmatch_lines(["*test_plain.py::test_plain PASSED*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1, result.stdout.str()
    assert not outcomes.get("failed"), result.stdout.str()
    if django == "without pytest-django":
        # A fixture that needs the database says what is missing.
        assert outcomes.get("errors") == 1, result.stdout.str()
        result.stdout.fnmatch_lines(["*write to the test database: they need pytest-django*"])
    else:
        # pytest-django skips tests that need a database it has no settings for.
        assert outcomes.get("skipped") == 1, result.stdout.str()


def test_the_plugin_can_be_disabled(integrator: pytest.Pytester) -> None:
    integrator.makepyfile(test_plain="def test_plain(tp_issuer):\n    pass\n")
    result = _run(integrator, "-p", "no:trusted_publishing", "-p", "no:django")
    result.stdout.fnmatch_lines(["*fixture 'tp_issuer' not found*"])


def test_the_examples_in_docs_testing_md_pass(integrator: pytest.Pytester) -> None:
    """Every ``python title="tests/..."`` block of docs/testing.md, run as an integrator would."""
    blocks = re.findall(r'```python title="tests/(\w+)\.py"\n(.*?)```', DOCS.read_text(), re.S)
    assert len(blocks) >= 4
    integrator.makepyfile(
        integrator_settings=SETTINGS, integrator_urls=URLS, **dict(blocks)
    )

    result = _run(integrator, "--ds=integrator_settings")

    tests = sum(body.count("\ndef test_") for _, body in blocks)
    result.assert_outcomes(passed=tests)
