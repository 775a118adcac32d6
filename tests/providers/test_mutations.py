"""Every claim check is load-bearing: removing any single one lets a hostile token through.

For each (provider, check) in ``trusted_publishing.providers.RULES[*].checks`` the check is
replaced by a no-op and a table of hostile tokens (signed by the real issuer key, each breaking
one rule) is exchanged through the mint endpoint: the tokens aimed at that check must now be
accepted, and with every check in place all of them are refused. The same is shown for the
guards outside ``checks``: required claims, ``requires_jti``, the issuer allowlist and its
``enabled`` switch, the audience (and its strictness), the algorithm pin, the signature, the
token's lifetime, the required registered claims and the minimum key length.

Five checks compare the very claim the candidate publishers are looked up by (``subject()``),
so no token can fail them alone. They are listed in ``COVERED_BY_SUBJECT``; the test proves that
they are redundant today and become load-bearing as soon as the lookup stops filtering on that
claim (test_checks_covered_by_the_lookup; reported to the lead).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest

from trusted_publishing import verification
from trusted_publishing.models import IssuedToken, Publisher, TrustedIssuer
from trusted_publishing.providers import RULES
from trusted_publishing.testing import TestIssuer

from .support import (
    activestate_publisher,
    github_publisher,
    gitlab_publisher,
    google_publisher,
    make_issuer,
    post_mint,
)

DROP = object()  # remove the claim
SHA = "714a629c0b401fdce83e847fc9589983fc6f46bc"
TAG = "refs/tags/v1.0.0"
GH_WORKFLOWS = "acme/widgets/.github/workflows"
GL_CONFIG = "gitlab.test/acme/widgets//.gitlab-ci.yml"
SA_ID = "111122223333444455556"

Overrides = dict[str, Any]


@dataclass
class Scenario:
    provider: str
    #: issuer -> a publisher with every optional constraint set (bound ids, environment, sub)
    publisher: Callable[..., Publisher]
    valid: Callable[[TestIssuer], dict[str, Any]]
    #: check name -> hostile claim overrides that break that check alone
    hostile: dict[str, list[Overrides]]
    #: tokens lacking a required claim that no check looks at again
    missing: list[Overrides] = field(default_factory=list)
    #: publisher field overrides under which `missing` tokens would otherwise pass
    missing_publisher: dict[str, Any] = field(default_factory=dict)


SCENARIOS = {
    "github": Scenario(
        provider="github",
        publisher=lambda issuer, **kw: github_publisher(
            issuer,
            **{
                "environment": "pypi",
                "repository_owner_id": "1001",
                "repository_id": "2002",
                **kw,
            },
        ),
        valid=lambda issuer: issuer.github_claims(environment="pypi"),
        hostile={
            "repository": [{"repository": "evil/widgets"}],
            "repository_owner": [{"repository_owner": "evil"}],
            "repository_owner_id": [{"repository_owner_id": "6666"}],
            "repository_id": [{"repository_id": "3003"}],
            "job_workflow_ref": [
                {"job_workflow_ref": f"{GH_WORKFLOWS}/other.yml@{TAG}"},
                {"job_workflow_ref": f"evil/tools/.github/workflows/release.yml@{TAG}"},
                {"job_workflow_ref": f"{GH_WORKFLOWS}/release.yml@refs/heads/attacker"},
            ],
            "event_name": [{"event_name": "pull_request_target"}, {"event_name": "workflow_run"}],
            "environment": [{"environment": "staging"}, {"environment": DROP}],
        },
        missing=[
            {"sha": DROP},
            {"ref": DROP, "job_workflow_ref": f"{GH_WORKFLOWS}/release.yml@{SHA}"},
            {"jti": DROP},
        ],
    ),
    "gitlab": Scenario(
        provider="gitlab",
        publisher=lambda issuer, **kw: gitlab_publisher(
            issuer,
            **{"environment": "Production", "namespace_id": "72", "project_id": "20", **kw},
        ),
        valid=lambda issuer: issuer.gitlab_claims(environment="Production"),
        hostile={
            "project_path": [{"project_path": "evil/widgets"}],
            "sub": [{"sub": "project_path:evil/widgets:ref_type:tag:ref:v1.0.0"}],
            "ci_config_ref_uri": [
                {"ci_config_ref_uri": f"gitlab.test/acme/widgets//other.yml@{TAG}"},
                {"ci_config_ref_uri": f"evil.example/acme/widgets//.gitlab-ci.yml@{TAG}"},
                {"ci_config_ref_uri": f"{GL_CONFIG}@refs/heads/attacker"},
            ],
            "namespace_id": [{"namespace_id": "99"}],
            "project_id": [{"project_id": "99", "job_project_id": "99"}],
            "job_project_id": [{"job_project_id": "21"}],
            "environment": [{"environment": "production"}, {"environment": DROP}],
        },
        missing=[{"jti": DROP}],
    ),
    "google": Scenario(
        provider="google",
        publisher=lambda issuer, **kw: google_publisher(issuer, **{"sub": SA_ID, **kw}),
        valid=lambda issuer: issuer.google_claims(),
        hostile={
            "email": [{"email": "other@acme-ci.iam.gserviceaccount.com"}],
            "email_verified": [
                {"email_verified": False},
                {"email_verified": "true"},
                {"email_verified": DROP},
            ],
            "sub": [{"sub": "999999999999999999999"}],
        },
        missing=[{"sub": DROP}],
        missing_publisher={"sub": ""},
    ),
    "activestate": Scenario(
        provider="activestate",
        publisher=lambda issuer, **kw: activestate_publisher(issuer, **kw),
        valid=lambda issuer: issuer.activestate_claims(),
        hostile={
            "organization": [{"organization": "evil"}],
            "project": [{"project": "gadgets"}],
            "actor_id": [{"actor_id": "zzz999"}],
            "sub": [{"sub": "org:evil:project:widgets"}],
            # (a missing builder is refused by the required-claims guard as well)
            "builder": [{"builder": "some-other-builder"}],
        },
        # Every required ActiveState claim is read again by a check (see test below).
        missing=[],
    ),
}

#: Checks of the claims that subject() looks candidates up by (declared by each provider as
#: ``lookup_claims``): redundant with the lookup, kept as a second line of defence.
COVERED_BY_SUBJECT = {
    (provider, claim) for provider, rules in RULES.items() for claim in rules.lookup_claims
}

ALL_CHECKS = [(p, name) for p, rules in RULES.items() for name, _check in rules.checks]
LOAD_BEARING = [c for c in ALL_CHECKS if c not in COVERED_BY_SUBJECT]


def apply(claims: dict[str, Any], overrides: Overrides) -> dict[str, Any]:
    out = dict(claims)
    for name, value in overrides.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def label(overrides: Overrides) -> str:
    return ",".join(f"{k}={'<missing>' if v is DROP else v}" for k, v in overrides.items())


@dataclass
class Bench:
    client: Any
    issuer: TestIssuer
    scenario: Scenario
    publisher: Publisher

    def accepted(self, overrides: Overrides, *, refused_code: str = "invalid-publisher") -> bool:
        claims = apply(self.scenario.valid(self.issuer), overrides)
        response = post_mint(self.client, self.issuer.sign(claims))
        if response.status_code == 200:
            return True
        assert response.json()["code"] == refused_code, (label(overrides), response.json())
        return False

    def hostile(self) -> list[Overrides]:
        return [o for table in self.scenario.hostile.values() for o in table]


def bench(client: Any, provider: str, **publisher_fields: Any) -> Bench:
    scenario = SCENARIOS[provider]
    issuer = make_issuer(provider)
    publisher = scenario.publisher(issuer, **publisher_fields)
    return Bench(client, issuer, scenario, publisher)


def without_check(monkeypatch: pytest.MonkeyPatch, provider: str, name: str) -> None:
    rules = RULES[provider]
    assert name in dict(rules.checks)
    neutered = tuple(
        (n, (lambda publisher, claims, issuer: None) if n == name else check)
        for n, check in rules.checks
    )
    monkeypatch.setattr(rules, "checks", neutered)


# --- the table is complete ------------------------------------------------------------------
@pytest.mark.parametrize("provider", sorted(RULES))
def test_every_registered_check_has_hostile_tokens(provider: str) -> None:
    assert set(SCENARIOS[provider].hostile) == {name for name, _ in RULES[provider].checks}


# --- with every rule in place ---------------------------------------------------------------
@pytest.mark.parametrize("provider", sorted(RULES))
def test_all_hostile_tokens_are_refused(client: Any, db: Any, provider: str) -> None:
    b = bench(client, provider)
    assert b.accepted({}), "the genuine token must mint, or the table proves nothing"
    for overrides in b.hostile() + b.scenario.missing:
        assert not b.accepted(overrides), label(overrides)
    assert IssuedToken.objects.count() == 1


# --- one check removed ------------------------------------------------------------------------
@pytest.mark.parametrize("provider,name", LOAD_BEARING, ids=[f"{p}.{n}" for p, n in LOAD_BEARING])
def test_removing_a_check_lets_a_hostile_token_through(
    client: Any, db: Any, monkeypatch: pytest.MonkeyPatch, provider: str, name: str
) -> None:
    b = bench(client, provider)
    without_check(monkeypatch, provider, name)
    accepted = [label(o) for o in b.hostile() if b.accepted(o)]
    assert accepted, f"{provider}.{name} is not load-bearing"
    # Exactly the tokens aimed at this check get through: no other check covers for it.
    assert accepted == [label(o) for o in b.scenario.hostile[name]]


@pytest.mark.parametrize(
    "provider,name",
    sorted(COVERED_BY_SUBJECT),
    ids=[f"{p}.{n}" for p, n in sorted(COVERED_BY_SUBJECT)],
)
def test_checks_covered_by_the_lookup(
    client: Any, db: Any, monkeypatch: pytest.MonkeyPatch, provider: str, name: str
) -> None:
    """These checks compare the claim the lookup already filters on: removing one alone changes
    nothing today. They become the only guard once the lookup stops filtering on the claim
    (simulated by a subject() that returns the publisher's subject whatever the token says)."""
    b = bench(client, provider)
    rules = RULES[provider]
    targeted = [label(o) for o in b.scenario.hostile[name]]

    without_check(monkeypatch, provider, name)
    assert [label(o) for o in b.hostile() if b.accepted(o)] == []

    monkeypatch.setattr(rules, "subject", lambda claims: b.publisher.subject)
    assert [label(o) for o in b.hostile() if b.accepted(o)] == targeted
    monkeypatch.undo()

    monkeypatch.setattr(rules, "subject", lambda claims: b.publisher.subject)
    assert [label(o) for o in b.hostile() if b.accepted(o)] == []


# --- guards outside `checks` ------------------------------------------------------------------
@pytest.mark.parametrize("provider", [p for p in sorted(SCENARIOS) if SCENARIOS[p].missing])
def test_required_claims_guard(
    client: Any, db: Any, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    b = bench(client, provider, **SCENARIOS[provider].missing_publisher)
    missing = b.scenario.missing
    assert not any(b.accepted(o) for o in missing)
    monkeypatch.setattr(RULES[provider], "missing_claims", lambda claims: [])
    assert all(b.accepted(o) for o in missing), [label(o) for o in missing]


def test_activestate_required_claims_are_all_rechecked(
    client: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documented redundancy: every required ActiveState claim is also read by a check, so
    removing the required-claims guard alone admits nothing."""
    b = bench(client, "activestate")
    monkeypatch.setattr(RULES["activestate"], "missing_claims", lambda claims: [])
    for claim in RULES["activestate"].required_claims:
        assert not b.accepted({claim: DROP}), claim


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_requires_jti_guard(
    client: Any, db: Any, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    b = bench(client, provider)
    assert RULES[provider].requires_jti is True
    assert not b.accepted({"jti": DROP})
    monkeypatch.setattr(RULES[provider], "requires_jti", False)
    assert b.accepted({"jti": DROP})


@pytest.fixture
def github(client: Any, db: Any) -> Bench:
    return bench(client, "github")


def _patch_decode(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]
) -> None:
    """Weaken the verifying ``jwt.decode`` call (not the unverified read of the issuer)."""
    original = jwt.decode

    def patched(token: str, key: Any = None, algorithms: Any = None, options: Any = None, **kw):
        args = {"key": key, "algorithms": algorithms, "options": dict(options or {}), **kw}
        if args["options"].get("verify_signature", True):
            change(args)
        return original(token, **args)

    monkeypatch.setattr(verification.jwt, "decode", patched)


def test_issuer_allowlist_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    # GitHub signs enterprise-slug tokens (iss = <issuer>/<slug>) with the same keys: the exact
    # issuer lookup keeps them away from github.com publishers, and jwt.decode compares iss with
    # the configured issuer URL once more. Two guards: with a prefix lookup the second refuses;
    # without both the token gets through.
    slug = {"iss": f"{github.issuer.url}/evil-enterprise"}
    assert not github.accepted(slug, refused_code="unknown-issuer")
    original = verification.find_issuer

    def prefix_match(iss: str) -> TrustedIssuer:
        for row in TrustedIssuer.objects.all():
            if iss.startswith(row.url):
                return row
        return original(iss)

    monkeypatch.setattr(verification, "find_issuer", prefix_match)
    assert not github.accepted({**slug, "jti": "second"}, refused_code="invalid-token")
    _patch_decode(monkeypatch, lambda args: args.pop("issuer"))
    assert github.accepted({**slug, "jti": "third"})


def test_issuer_enabled_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    TrustedIssuer.objects.filter(url=github.issuer.url).update(enabled=False)
    assert not github.accepted({}, refused_code="not-enabled")
    monkeypatch.setattr(verification, "find_issuer", lambda iss: TrustedIssuer.objects.get(url=iss))
    assert github.accepted({})


def test_audience_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = {"aud": "pypi"}
    assert not github.accepted(foreign, refused_code="invalid-token")
    _patch_decode(monkeypatch, lambda args: args["options"].update(verify_aud=False))
    assert github.accepted(foreign)


def test_strict_audience_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = {"aud": ["pypi", "tests.example.internal"]}
    assert not github.accepted(shared, refused_code="invalid-token")
    # What a non-strict verifier does: accept any list that contains our audience.
    _patch_decode(monkeypatch, lambda args: args["options"].update(strict_aud=False))
    assert github.accepted(shared)


def test_algorithm_pin_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    # An issuer's key set that (wrongly) also publishes a symmetric key: its secret is public,
    # so only the RS256 pin stops anyone from signing tokens with it.
    secret = secrets.token_bytes(32)
    oct_key = {
        "kty": "oct",
        "kid": "shared-secret",
        "alg": "HS256",
        "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode(),
    }
    row = TrustedIssuer.objects.get(url=github.issuer.url)
    row.static_jwks = {"keys": [*github.issuer.jwks()["keys"], oct_key]}
    row.save()
    claims = github.scenario.valid(github.issuer)
    forged = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "shared-secret"})

    response = post_mint(github.client, forged)
    assert response.status_code == 422 and response.json()["code"] == "invalid-token"

    # Two guards: the issuer's algorithm list (RS256), and no symmetric algorithm ever.
    TrustedIssuer.objects.filter(pk=row.pk).update(algorithms=["RS256", "HS256"])
    forged = jwt.encode(
        {**claims, "jti": "another"}, secret, algorithm="HS256", headers={"kid": "shared-secret"}
    )
    response = post_mint(github.client, forged)
    assert response.status_code == 422 and response.json()["code"] == "invalid-token"
    monkeypatch.setattr(
        verification, "ASYMMETRIC_ALGORITHMS", verification.ASYMMETRIC_ALGORITHMS | {"HS256"}
    )
    forged = jwt.encode(
        {**claims, "jti": "third"}, secret, algorithm="HS256", headers={"kid": "shared-secret"}
    )
    assert post_mint(github.client, forged).status_code == 200


# --- the signature and the registered claims (verification.py) ----------------------------------
def test_signature_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    claims = github.scenario.valid(github.issuer)
    header, _payload, signature = github.issuer.sign(claims).split(".")
    forged_payload = base64.urlsafe_b64encode(
        json.dumps({**claims, "jti": "forged"}).encode()
    ).rstrip(b"=")
    forged = f"{header}.{forged_payload.decode()}.{signature}"
    response = post_mint(github.client, forged)
    assert response.status_code == 422 and response.json()["code"] == "invalid-token"
    _patch_decode(monkeypatch, lambda args: args["options"].update(verify_signature=False))
    assert post_mint(github.client, forged).status_code == 200


def test_lifetime_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    now = int(time.time())
    expired = {"iat": now - 3600, "exp": now - 600}
    assert not github.accepted(expired, refused_code="invalid-token")
    future = {"iat": now + 600, "exp": now + 1200, "jti": "future"}
    assert not github.accepted(future, refused_code="invalid-token")
    _patch_decode(
        monkeypatch,
        lambda args: args["options"].update(verify_exp=False, verify_iat=False, verify_nbf=False),
    )
    assert github.accepted(expired)
    assert github.accepted(future)


def test_required_registered_claims_guard(github: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    # A token without "exp" would never expire.
    assert not github.accepted({"exp": DROP}, refused_code="invalid-token")
    monkeypatch.setattr(verification, "REQUIRED_CLAIMS", ("iss", "aud", "iat"))
    assert github.accepted({"exp": DROP})


def test_key_length_guard(client: Any, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    weak = TestIssuer("https://weak-keys.test", key_size=1024)
    weak.register("github")
    github_publisher(weak)
    claims = weak.github_claims()
    response = post_mint(client, weak.sign(claims))
    assert response.status_code == 422 and response.json()["code"] == "invalid-token"
    monkeypatch.setattr(verification, "MIN_RSA_KEY_BITS", 1024)
    assert post_mint(client, weak.sign({**claims, "jti": "again"})).status_code == 200
