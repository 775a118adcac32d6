"""A table of forged and hostile identity tokens and requests, each with its expected answer.

The issuer is a real discovery-based issuer on 127.0.0.1 (tests/support/idp.py), so a
header that made the app fetch a key from anywhere would show up as a request: every case also
asserts that the attacker's server was never contacted and the issuer's keys were fetched at
most once (the cold cache of each test).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import RSAAlgorithm, RSAPSSAlgorithm

from tests.plugins.secrets_guard import count, record_secret
from tests.providers.support import (
    ACTIVESTATE_URL,
    GOOGLE_URL,
    activestate_publisher,
    assert_problem,
    google_publisher,
)
from tests.support.idp import CountingServer, FakeIdP
from trusted_publishing.models import (
    AuditEvent,
    GitHubPublisher,
    GitLabPublisher,
    IssuedToken,
    TrustedIssuer,
    UsedIdentityToken,
)
from trusted_publishing.testing import TestIssuer

MINT = "/_/oidc/mint-token"
LEGACY_MINT = "/_/oidc/github/mint-token"
OTHER_ISSUER = "https://gitlab.test"
DISABLED_ISSUER = "https://disabled.test"
AUDIENCE = "tests.example.internal"
TAG = "refs/tags/v1.0.0"
GH_WORKFLOWS = "acme/widgets/.github/workflows"
GL_CONFIG = "gitlab.test/acme/widgets//.gitlab-ci.yml"


# --- crafting tokens by hand ---------------------------------------------------------------------
def b64(data: bytes | str | dict | list) -> str:
    if isinstance(data, dict | list):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(header: Any, payload: Any, signer: Callable[[bytes], bytes] | None = None) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = signer(signing_input.encode()) if signer else b""
    token = f"{signing_input}.{b64(signature) if signature else ''}"
    if signature:
        record_secret(token, "jwt")
    return token


@dataclass
class Ctx:
    idp: FakeIdP
    attacker: CountingServer
    attacker_key: rsa.RSAPrivateKey
    other: TestIssuer  # another trusted issuer (static keys), GitLab
    disabled: TestIssuer
    google: TestIssuer  # static keys, with a publisher for its default claims
    activestate: TestIssuer  # static keys, with a publisher for its default claims

    @property
    def issuer(self) -> TestIssuer:
        return self.idp.issuer

    @property
    def kid(self) -> str:
        return self.issuer.kid

    def claims(self, **overrides: Any) -> dict[str, Any]:
        claims = self.issuer.github_claims(**overrides)
        for name, value in overrides.items():
            if value is DROP:
                claims.pop(name, None)
        return claims

    def sign(self, claims: dict[str, Any] | None = None, **headers: Any) -> str:
        return self.issuer.sign(claims or self.claims(), headers=headers)

    def rsa_signer(self, alg: str, key: Any = None) -> Callable[[bytes], bytes]:
        algorithm = (RSAPSSAlgorithm if alg.startswith("PS") else RSAAlgorithm)(
            getattr(RSAAlgorithm, "SHA" + alg[2:])
        )
        return lambda msg: algorithm.sign(msg, key or self.issuer.private_key)

    def hmac_signer(self, secret: bytes) -> Callable[[bytes], bytes]:
        return lambda msg: hmac.new(secret, msg, hashlib.sha256).digest()

    def attacker_token(self, **headers: Any) -> str:
        hdrs = {"alg": "RS256", "typ": "JWT", "kid": self.kid, **headers}
        return raw_jwt(hdrs, self.claims(), self.rsa_signer("RS256", self.attacker_key))


DROP = object()  # claims(**{name: DROP}) removes a claim


def _header(ctx: Ctx, **overrides: Any) -> dict[str, Any]:
    header = {"alg": "RS256", "typ": "JWT", "kid": ctx.kid}
    header.update(overrides)
    return {k: v for k, v in header.items() if v is not DROP}


def _signed_raw(ctx: Ctx, header: dict[str, Any], payload: Any) -> str:
    return raw_jwt(header, payload, ctx.rsa_signer("RS256"))


def _dup_claims(ctx: Ctx, first: dict[str, Any], last: dict[str, Any]) -> str:
    """A payload with duplicate keys: `first` values early, `last` values at the end."""
    claims = ctx.claims()
    body = json.dumps({**claims, **first})[:-1]
    body += "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in last.items()) + "}"
    return _signed_raw(ctx, _header(ctx), body)


def _mangled(ctx: Ctx, **values: Any) -> str:
    """Genuinely signed, with claims set after the defaults (any JSON type)."""
    claims = ctx.claims()
    claims.update(values)
    return _signed_raw(ctx, _header(ctx), claims)


def _non_canonical(token: str) -> str:
    """``token`` with its signature's last character changed only in the bits base64url leaves
    unused, so it decodes to the very same bytes (a 2048-bit signature has 4 such bits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    head, last = token[:-1], token[-1]
    assert len(token.rsplit(".", 1)[1]) % 4 == 2  # 256 bytes: 342 characters, 4 spare bits
    return head + alphabet[alphabet.index(last) ^ 1]


def _alg_none(ctx: Ctx, alg: str) -> str:
    return raw_jwt(_header(ctx, alg=alg), ctx.claims())


def _ec_token(ctx: Ctx) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(ctx.claims(), key, algorithm="ES256", headers={"kid": ctx.kid})


def _eddsa_token(ctx: Ctx) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return jwt.encode(ctx.claims(), key, algorithm="EdDSA", headers={"kid": ctx.kid})


def _spliced(ctx: Ctx) -> str:
    """A genuine signature on a payload edited afterwards (repository swapped)."""
    genuine = ctx.sign(ctx.claims(repository="mallory/widgets"))
    header, _payload, signature = genuine.split(".")
    return f"{header}.{b64(ctx.claims())}.{signature}"


def _unsigned_rs256(ctx: Ctx) -> str:
    return ctx.sign().rsplit(".", 1)[0] + "."


def _x5c_token(ctx: Ctx) -> str:
    jwk = json.loads(RSAAlgorithm.to_jwk(ctx.attacker_key.public_key()))
    return ctx.attacker_token(x5c=[b64(json.dumps(jwk))])


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _resurrected(ctx: Ctx) -> str:
    return ctx.sign(ctx.claims(owner_id="666666"))


def _hs256_operator_allows(ctx: Ctx) -> str:
    """HS256 with the public key as the secret, after an operator added HS256 to the issuer's
    algorithms: the RSA key is bound to RS256, it is never used as an HMAC secret."""
    TrustedIssuer.objects.filter(url=ctx.issuer.url).update(algorithms=["RS256", "HS256"])
    return raw_jwt(
        _header(ctx, alg="HS256"), ctx.claims(), ctx.hmac_signer(ctx.issuer.public_pem())
    )


# Wrong claim values, set after the provider's genuine claims (nothing else changes), each
# signed by the issuer of a publisher whose identity the genuine claims match.
def _github(ctx: Ctx, **overrides: Any) -> str:
    return ctx.sign({**ctx.claims(), **overrides})


def _gitlab(ctx: Ctx, **overrides: Any) -> str:
    return ctx.other.sign({**ctx.other.gitlab_claims(), **overrides})


def _google(ctx: Ctx, **overrides: Any) -> str:
    return ctx.google.sign({**ctx.google.google_claims(), **overrides})


def _activestate(ctx: Ctx, **overrides: Any) -> str:
    return ctx.activestate.sign({**ctx.activestate.activestate_claims(), **overrides})


# --- the table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Ctx], Any]  # a token (str) or {"body": ..., "path"?: ..., "raw"?: bytes}
    status: int
    code: str | None  # None: success
    detail: str | None = None  # a substring the refusal's detail must contain


CASES: list[Case] = [
    # Algorithm tricks: the issuer pins RS256 and the key carries its own algorithm.
    Case("alg-none", lambda c: _alg_none(c, "none"), 422, "invalid-token"),
    Case("alg-None", lambda c: _alg_none(c, "None"), 422, "invalid-token"),
    Case("alg-NONE", lambda c: _alg_none(c, "NONE"), 422, "invalid-token"),
    Case("alg-nOnE", lambda c: _alg_none(c, "nOnE"), 422, "invalid-token"),
    Case(
        "alg-none-with-signature",
        lambda c: c.sign().replace(c.sign().split(".")[0], b64(_header(c, alg="none")), 1),
        422,
        "invalid-token",
    ),
    Case(
        "hs256-public-pem-as-secret",
        lambda c: raw_jwt(
            _header(c, alg="HS256"), c.claims(), c.hmac_signer(c.issuer.public_pem())
        ),
        422,
        "invalid-token",
    ),
    Case("hs256-public-pem-operator-allows-hs256", _hs256_operator_allows, 422, "invalid-token"),
    Case(
        "hs256-public-jwk-as-secret",
        lambda c: raw_jwt(
            _header(c, alg="HS256"),
            c.claims(),
            c.hmac_signer(json.dumps(c.issuer.public_jwk()).encode()),
        ),
        422,
        "invalid-token",
    ),
    *(
        Case(
            f"{alg.lower()}-real-key",
            lambda c, alg=alg: raw_jwt(_header(c, alg=alg), c.claims(), c.rsa_signer(alg)),
            422,
            "invalid-token",
            detail="algorithm",
        )
        for alg in ("RS512", "PS256", "RS384")
    ),
    Case("es256-attacker-key", _ec_token, 422, "invalid-token"),
    Case("eddsa-attacker-key", _eddsa_token, 422, "invalid-token"),
    Case(
        "alg-missing",
        lambda c: _signed_raw(c, _header(c, alg=DROP), c.claims()),
        422,
        "invalid-token",
    ),
    Case(
        "alg-as-list",
        lambda c: _signed_raw(c, _header(c, alg=["RS256"]), c.claims()),
        422,
        "invalid-token",
    ),
    Case("crit-unknown-extension", lambda c: c.sign(crit=["exp"]), 422, "invalid-payload"),
    Case("crit-not-a-list", lambda c: c.sign(crit="b64"), 422, "invalid-payload"),
    # Key-location headers must be ignored (and cause no fetch: see the fixture's assertions).
    Case(
        "jku-attacker-jwks",
        lambda c: c.attacker_token(jku=c.attacker.url + "/jwks"),
        422,
        "invalid-token",
    ),
    Case(
        "x5u-attacker-cert",
        lambda c: c.attacker_token(x5u=c.attacker.url + "/cert.pem"),
        422,
        "invalid-token",
    ),
    Case(
        "jwk-embedded-attacker-key",
        lambda c: c.attacker_token(
            jwk=json.loads(RSAAlgorithm.to_jwk(c.attacker_key.public_key()))
        ),
        422,
        "invalid-token",
    ),
    Case("x5c-attacker-chain", _x5c_token, 422, "invalid-token"),
    Case(
        "jwk-jku-x5u-together",
        lambda c: c.attacker_token(
            jwk=json.loads(RSAAlgorithm.to_jwk(c.attacker_key.public_key())),
            jku=c.attacker.url + "/jwks",
            x5u=c.attacker.url + "/cert.pem",
        ),
        422,
        "invalid-token",
    ),
    Case(
        "attacker-key-real-kid",
        lambda c: c.attacker_token(),
        422,
        "invalid-token",
        detail="signature",
    ),
    # Key confusion: keys are per issuer; another trusted issuer's key and kid do not count.
    Case("other-issuers-key-and-kid", lambda c: c.other.sign(c.claims()), 422, "invalid-token"),
    Case("signature-stripped", _unsigned_rs256, 422, "invalid-token"),
    Case("payload-spliced-under-genuine-signature", _spliced, 422, "invalid-token"),
    # kid injection: never a path, a query or an unbounded key.
    Case(
        "kid-path-traversal", lambda c: c.sign(kid="../../../../etc/passwd"), 422, "invalid-token"
    ),
    Case("kid-sql-injection", lambda c: c.sign(kid="x' OR '1'='1' --"), 422, "invalid-token"),
    Case("kid-huge", lambda c: c.sign(kid="k" * 5000), 422, "invalid-token"),
    Case("kid-300-chars", lambda c: c.sign(kid="k" * 300), 422, "invalid-token"),
    Case("kid-empty", lambda c: c.sign(kid=""), 422, "invalid-token"),
    Case("kid-unknown", lambda c: c.sign(kid="no-such-key"), 422, "invalid-token"),
    Case("kid-newline-inside", lambda c: c.sign(kid="a\nb"), 422, "invalid-token"),
    Case(
        "kid-integer",
        lambda c: _signed_raw(c, _header(c, kid=7), c.claims()),
        422,
        "invalid-payload",
    ),
    Case(
        "kid-null",
        lambda c: _signed_raw(c, _header(c, kid=None), c.claims()),
        422,
        "invalid-payload",
    ),
    Case(
        "kid-missing",
        lambda c: _signed_raw(c, _header(c, kid=DROP), c.claims()),
        422,
        "invalid-token",
    ),
    Case("kid-control-chars", lambda c: c.sign(kid=c.kid + "\x00\n"), 422, "invalid-token"),
    Case(
        "kid-right-to-left-override", lambda c: c.sign(kid="\u202e" + c.kid), 422, "invalid-token"
    ),
    # Encoding: size, base64, JSON.
    Case(
        "token-over-16k",
        lambda c: c.sign(c.claims(extra_claims={"padding": "p" * 20000})),
        422,
        "invalid-payload",
    ),
    Case("invalid-base64-chars", lambda c: "eyJ!!!.eyJ***.sig", 422, "invalid-payload"),
    Case("two-segments", lambda c: c.sign().rsplit(".", 1)[0], 422, "invalid-payload"),
    Case("four-segments", lambda c: c.sign() + ".AAAA", 422, "invalid-payload"),
    Case("jwe-five-segments", lambda c: "a.b.c.d.e", 422, "invalid-payload"),
    Case("base64-padding", lambda c: c.sign().replace(".", "==.", 1), 422, "invalid-payload"),
    Case("payload-not-json", lambda c: _signed_raw(c, _header(c), "hello"), 422, "invalid-payload"),
    Case(
        "payload-json-array", lambda c: _signed_raw(c, _header(c), [1, 2]), 422, "invalid-payload"
    ),
    Case(
        "payload-nested-bomb",
        lambda c: _signed_raw(c, _header(c), _nested(5000)),
        422,
        "invalid-payload",
    ),
    Case(
        "header-nested-bomb", lambda c: raw_jwt(_nested(5000), c.claims()), 422, "invalid-payload"
    ),
    Case(
        "payload-invalid-utf8",
        lambda c: _signed_raw(c, _header(c), b"\xff\xfe{}"),
        422,
        "invalid-payload",
    ),
    # Duplicate claims: parsed once, last value wins everywhere (no parser differential).
    Case(
        "duplicate-aud-last-is-pypi",
        lambda c: _dup_claims(c, {}, {"aud": "pypi"}),
        422,
        "invalid-token",
    ),
    Case(
        "duplicate-iss-last-is-other-issuer",
        lambda c: _dup_claims(c, {}, {"iss": OTHER_ISSUER}),
        422,
        "invalid-token",
    ),
    Case(
        "duplicate-repository-last-is-fork",
        lambda c: _dup_claims(c, {}, {"repository": "mallory/widgets"}),
        422,
        "invalid-publisher",
    ),
    # Wrong JSON types for the registered and the provider claims.
    Case("exp-non-numeric-string", lambda c: _mangled(c, exp="tomorrow"), 422, "invalid-token"),
    # PyJWT reads a numeric string as a NumericDate; it is still enforced.
    Case(
        "exp-numeric-string-expired",
        lambda c: _mangled(c, exp=str(int(time.time()) - 120)),
        422,
        "invalid-token",
    ),
    # NaN and Infinity are not JSON (RFC 8259), though Python's json module reads them: an
    # "exp" of Infinity would never expire.
    Case(
        "exp-float-nan",
        lambda c: _signed_raw(
            c, _header(c), json.dumps(c.claims()).replace('"exp": ', '"exp": NaN, "x": ')
        ),
        422,
        "invalid-payload",
    ),
    Case(
        "exp-infinity",
        lambda c: _signed_raw(
            c, _header(c), json.dumps(c.claims()).replace('"exp": ', '"exp": Infinity, "x": ')
        ),
        422,
        "invalid-payload",
    ),
    # Numbers no clock can hold (a float conversion of a 400-digit integer overflows).
    Case("nbf-huge-negative", lambda c: _mangled(c, nbf=-(10**400)), 422, "invalid-token"),
    Case("exp-huge-integer", lambda c: _mangled(c, exp=10**400), 422, "invalid-token"),
    Case("exp-1e300", lambda c: _mangled(c, exp=1e300), 422, "invalid-token"),
    # Escaped lone surrogates parse to strings no database or hash can encode.
    Case(
        "iss-lone-surrogate-unsigned",
        lambda c: raw_jwt(_header(c), '{"iss": "https://x\\ud800", "aud": "a"}') + "AAAA",
        422,
        "invalid-payload",
    ),
    Case(
        "jti-lone-surrogate",
        lambda c: _signed_raw(
            c, _header(c), json.dumps(c.claims()).replace('"jti": ', '"jti": "\\udfff", "x": ')
        ),
        422,
        "invalid-payload",
    ),
    # Time claims are JSON numbers; PyJWT also read numeric strings, this index does not.
    Case(
        "exp-numeric-string-unexpired",
        lambda c: _mangled(c, exp=str(int(time.time()) + 600)),
        422,
        "invalid-token",
    ),
    Case("exp-boolean", lambda c: _mangled(c, exp=True), 422, "invalid-token"),
    # The same signature bytes under another base64url spelling (unused low bits set).
    Case(
        "signature-non-canonical-base64", lambda c: _non_canonical(c.sign()), 422, "invalid-payload"
    ),
    Case("iat-string", lambda c: _mangled(c, iat="now"), 422, "invalid-token"),
    Case("nbf-list", lambda c: _mangled(c, nbf=[0]), 422, "invalid-token"),
    Case(
        "aud-list-with-ours",
        lambda c: c.sign(c.claims(aud=["tests.example.internal"])),
        422,
        "invalid-token",
    ),
    Case(
        "aud-list-ours-and-pypi",
        lambda c: c.sign(c.claims(aud=["tests.example.internal", "pypi"])),
        422,
        "invalid-token",
    ),
    Case("iss-integer", lambda c: _mangled(c, iss=1), 422, "invalid-payload"),
    Case("iss-null", lambda c: _mangled(c, iss=None), 422, "invalid-payload"),
    Case("iss-list", lambda c: _mangled(c, iss=[c.issuer.url]), 422, "invalid-payload"),
    Case("jti-integer", lambda c: _mangled(c, jti=1), 422, "invalid-token"),
    Case("repository-integer", lambda c: _mangled(c, repository=7), 422, "invalid-publisher"),
    Case(
        "repository-owner-id-integer",
        lambda c: _mangled(c, repository_owner_id=1001),
        422,
        "invalid-publisher",
    ),
    Case(
        "repository-dict",
        lambda c: _mangled(c, repository={"name": "acme/widgets"}),
        422,
        "invalid-publisher",
    ),
    Case(
        "job-workflow-ref-list",
        lambda c: _mangled(
            c, job_workflow_ref=["acme/widgets/.github/workflows/release.yml@refs/tags/v1.0.0"]
        ),
        422,
        "invalid-publisher",
    ),
    Case("event-name-null", lambda c: _mangled(c, event_name=None), 422, "invalid-publisher"),
    Case(
        "environment-list",
        lambda c: c.sign(c.claims(repository="acme/gadgets", environment=["pypi"])),
        422,
        "invalid-publisher",
    ),
    Case("ref-boolean", lambda c: _mangled(c, ref=True), 422, "invalid-publisher"),
    Case("sub-integer", lambda c: _mangled(c, sub=5), 422, "invalid-token"),
    Case(
        "run-id-5000-digit-integer",
        lambda c: _signed_raw(
            c, _header(c), json.dumps(c.claims()).replace('"9876543210"', "9" * 5000)
        ),
        422,
        "invalid-payload",
    ),
    # Time window.
    # Expired by twice the leeway (JWT_LEEWAY = 30 s): tolerance stops there.
    Case(
        "expired",
        lambda c: c.sign(
            c.claims(
                iat=int(time.time()) - 900, nbf=int(time.time()) - 900, exp=int(time.time()) - 60
            )
        ),
        422,
        "invalid-token",
        detail="expired",
    ),
    Case(
        "not-yet-valid-nbf",
        lambda c: c.sign(c.claims(nbf=int(time.time()) + 600)),
        422,
        "invalid-token",
        detail="not yet valid",
    ),
    Case(
        "issued-in-the-future",
        lambda c: c.sign(c.claims(iat=int(time.time()) + 600)),
        422,
        "invalid-token",
        detail="not yet valid",
    ),
    *(
        Case(
            f"{claim}-missing",
            lambda c, claim=claim: c.sign(c.claims(**{claim: DROP})),
            422,
            "invalid-token",
            detail=claim,
        )
        for claim in ("exp", "iat", "aud")
    ),
    Case("iss-missing", lambda c: c.sign(c.claims(iss=DROP)), 422, "invalid-payload"),
    # Audience of another index or service.
    Case("aud-pypi", lambda c: c.sign(c.claims(aud="pypi")), 422, "invalid-token"),
    Case("aud-testpypi", lambda c: c.sign(c.claims(aud="testpypi")), 422, "invalid-token"),
    Case(
        "aud-case-variant",
        lambda c: c.sign(c.claims(aud="Tests.Example.Internal")),
        422,
        "invalid-token",
    ),
    Case(
        "aud-github-default",
        lambda c: c.sign(c.claims(aud="https://github.com/acme")),
        422,
        "invalid-token",
    ),
    Case("aud-suffix", lambda c: c.sign(c.claims(aud=AUDIENCE + ".evil")), 422, "invalid-token"),
    Case("aud-empty-list", lambda c: c.sign(c.claims(aud=[])), 422, "invalid-token"),
    # Issuer routing: exact string match only.
    Case(
        "iss-unknown",
        lambda c: TestIssuer("https://evil.example").sign(c.claims(iss="https://evil.example")),
        422,
        "unknown-issuer",
        detail="https://evil.example",
    ),
    # NUL cannot be stored in PostgreSQL text/jsonb: the refusal must still be audited.
    Case(
        "iss-with-nul-byte",
        lambda c: _mangled(c, iss=c.issuer.url + "\x00"),
        422,
        "unknown-issuer",
    ),
    Case(
        "repository-with-nul-byte",
        lambda c: _mangled(c, repository="acme/widgets\x00"),
        422,
        "invalid-publisher",
    ),
    Case(
        "iss-trailing-slash",
        lambda c: c.sign(c.claims(iss=c.issuer.url + "/")),
        422,
        "unknown-issuer",
    ),
    Case(
        "iss-upper-case",
        lambda c: c.sign(c.claims(iss=c.issuer.url.upper())),
        422,
        "unknown-issuer",
    ),
    Case(
        "iss-disabled", lambda c: c.disabled.sign(c.claims(iss=DISABLED_ISSUER)), 403, "not-enabled"
    ),
    # Identity look-alikes and case tricks.
    Case(
        "cyrillic-a-in-owner-and-repo",
        lambda c: c.sign(c.claims(repository="\u0430cme/widgets")),
        422,
        "invalid-publisher",
    ),
    Case(
        "cyrillic-a-in-owner-only",
        lambda c: c.sign(c.claims(repository_owner="\u0430cme")),
        422,
        "invalid-publisher",
    ),
    Case(
        "fullwidth-repository",
        lambda c: c.sign(c.claims(repository="\uff41cme/widgets")),
        422,
        "invalid-publisher",
    ),
    Case(
        "zero-width-space",
        lambda c: c.sign(c.claims(repository="acme/wid\u200bgets")),
        422,
        "invalid-publisher",
    ),
    Case(
        "trailing-space-repository",
        lambda c: c.sign(c.claims(repository="acme/widgets ")),
        422,
        "invalid-publisher",
    ),
    Case(
        "workflow-filename-case",
        lambda c: c.sign(c.claims(workflow="Release.yml")),
        422,
        "invalid-publisher",
    ),
    # GitHub names are case-insensitive and the immutable ids match: the same repository.
    Case(
        "repository-case-variant-same-ids",
        lambda c: c.sign(c.claims(repository="ACME/Widgets")),
        200,
        None,
    ),
    # Privileged triggers, forks and reusable workflows.
    Case(
        "fork-pull-request",
        lambda c: c.sign(
            c.claims(
                repository="mallory/widgets",
                owner_id="31337",
                repository_id="31338",
                event_name="pull_request",
                ref="refs/pull/1/merge",
            )
        ),
        422,
        "invalid-publisher",
    ),
    Case(
        "pull-request-target",
        lambda c: c.sign(c.claims(event_name="pull_request_target")),
        422,
        "invalid-publisher",
    ),
    Case(
        "workflow-run",
        lambda c: c.sign(c.claims(event_name="workflow_run")),
        422,
        "invalid-publisher",
    ),
    Case(
        "reusable-workflow-other-repo",
        lambda c: c.sign(
            c.claims(job_workflow_ref=f"mallory/actions/.github/workflows/release.yml@{TAG}")
        ),
        422,
        "invalid-publisher",
    ),
    Case(
        "reusable-workflow-prefix-repo",
        lambda c: c.sign(
            c.claims(
                job_workflow_ref="acme/widgets-evil/.github/workflows/release.yml@refs/tags/v1.0.0"
            )
        ),
        422,
        "invalid-publisher",
    ),
    Case(
        "workflow-ref-path-traversal",
        lambda c: c.sign(
            c.claims(
                job_workflow_ref="acme/widgets/.github/workflows/../../x/release.yml@refs/tags/v1.0.0"
            )
        ),
        422,
        "invalid-publisher",
    ),
    Case(
        "workflow-ref-at-other-ref",
        lambda c: c.sign(
            c.claims(job_workflow_ref="acme/widgets/.github/workflows/release.yml@refs/heads/evil")
        ),
        422,
        "invalid-publisher",
    ),
    Case(
        "environment-missing-for-env-publisher",
        lambda c: c.sign(c.claims(repository="acme/gadgets")),
        422,
        "invalid-publisher",
        detail="environment",
    ),
    Case(
        "environment-empty-for-env-publisher",
        lambda c: c.sign(c.claims(repository="acme/gadgets", environment="")),
        422,
        "invalid-publisher",
        detail="environment",
    ),
    Case(
        "environment-other-name",
        lambda c: c.sign(c.claims(repository="acme/gadgets", environment="pypi-test")),
        422,
        "invalid-publisher",
        detail="environment",
    ),
    Case(
        "gitlab-shaped-token-from-github-issuer",
        lambda c: c.sign(c.issuer.gitlab_claims(iss=c.issuer.url)),
        422,
        "invalid-publisher",
    ),
    # Resurrection: the same names under a different owner / repository id.
    Case("resurrected-owner", _resurrected, 422, "invalid-publisher", detail="repository_owner_id"),
    Case(
        "recreated-repository",
        lambda c: c.sign(c.claims(repository_id="999999")),
        422,
        "invalid-publisher",
        detail="repository_id",
    ),
    Case(
        "gitlab-fork-merge-request",
        lambda c: c.other.sign(c.other.gitlab_claims(job_project_id="4242")),
        422,
        "invalid-publisher",
        detail="fork",
    ),
    # Wrong values of the claims each provider's rules compare (only that claim changed). The
    # genuine tokens they are made from mint, so each refusal is that claim's doing.
    Case("github-genuine", lambda c: _github(c), 200, None),
    Case("gitlab-genuine", lambda c: _gitlab(c), 200, None),
    Case("google-genuine", lambda c: _google(c), 200, None),
    Case("activestate-genuine", lambda c: _activestate(c), 200, None),
    *(
        Case(f"github-{name}", lambda c, o=overrides: _github(c, **o), 422, "invalid-publisher")
        for name, overrides in {
            "repository-of-the-same-owner": {"repository": "acme/gizmos"},
            "repository-of-another-owner": {"repository": "evil/widgets"},
            "repository-owner-other": {"repository_owner": "evil"},
            "workflow-other-file": {"job_workflow_ref": f"{GH_WORKFLOWS}/other.yml@{TAG}"},
            "workflow-without-ref": {"job_workflow_ref": f"{GH_WORKFLOWS}/release.yml"},
        }.items()
    ),
    *(
        Case(f"gitlab-{name}", lambda c, o=overrides: _gitlab(c, **o), 422, "invalid-publisher")
        for name, overrides in {
            "project-path-other": {"project_path": "acme/gadgets"},
            "sub-other-project": {"sub": "project_path:evil/widgets:ref_type:tag:ref:v1.0.0"},
            "sub-not-a-project-path-subject": {"sub": "acme/widgets"},
            "ci-config-other-file": {
                "ci_config_ref_uri": f"gitlab.test/acme/widgets//other.yml@{TAG}"
            },
            "ci-config-file-name-case": {
                "ci_config_ref_uri": f"gitlab.test/acme/widgets//.GITLAB-CI.yml@{TAG}"
            },
            "ci-config-other-host": {
                "ci_config_ref_uri": f"gitlab.com/acme/widgets//.gitlab-ci.yml@{TAG}"
            },
            "ci-config-remote-host": {
                "ci_config_ref_uri": f"evil.example/acme/widgets//.gitlab-ci.yml@{TAG}"
            },
            "ci-config-other-project": {
                "ci_config_ref_uri": f"gitlab.test/evil/widgets//.gitlab-ci.yml@{TAG}"
            },
            "ci-config-other-ref": {"ci_config_ref_uri": f"{GL_CONFIG}@refs/heads/attacker"},
            "ci-config-without-ref": {"ci_config_ref_uri": GL_CONFIG},
            "ci-config-empty-ref-path-and-sha": {
                "ci_config_ref_uri": f"{GL_CONFIG}@",
                "ref_path": "",
                "sha": "",
            },
        }.items()
    ),
    *(
        Case(f"google-{name}", lambda c, o=overrides: _google(c, **o), 422, "invalid-publisher")
        for name, overrides in {
            "email-other-service-account": {"email": "other@acme-ci.iam.gserviceaccount.com"},
            "email-verified-false": {"email_verified": False},
            "email-verified-string-true": {"email_verified": "true"},
            "email-verified-1": {"email_verified": 1},
        }.items()
    ),
    *(
        Case(
            f"activestate-{name}",
            lambda c, o=overrides: _activestate(c, **o),
            422,
            "invalid-publisher",
        )
        for name, overrides in {
            "organization-other": {"organization": "evil", "sub": "org:evil:project:widgets"},
            "project-other": {"project": "gadgets", "sub": "org:acme:project:gadgets"},
            "actor-id-other": {"actor_id": "zzz999"},
            "sub-other-organization": {"sub": "org:evil:project:widgets"},
            "sub-other-project": {"sub": "org:acme:project:gadgets"},
            "sub-too-short": {"sub": "org:acme"},
            "builder-other": {"builder": "some-other-builder"},
        }.items()
    ),
    # Hostile requests around a token.
    Case("body-not-json", lambda c: {"raw": b"token=abc"}, 422, "invalid-payload"),
    Case("body-json-array", lambda c: {"body": [c.sign()]}, 422, "invalid-payload"),
    Case("body-invalid-utf8", lambda c: {"raw": b'{"token": "\xff"}'}, 422, "invalid-payload"),
    Case(
        "body-nested-bomb",
        lambda c: {"raw": b'{"x": ' + _nested(10000).encode() + b"}"},
        422,
        "invalid-payload",
    ),
    Case(
        "body-duplicate-token-keys",
        lambda c: {"raw": ('{"token": "' + c.sign() + '", "token": "x.y.z"}').encode()},
        422,
        "invalid-payload",
    ),
    Case("token-number", lambda c: {"body": {"token": 12345}}, 422, "invalid-payload"),
    Case("token-object", lambda c: {"body": {"token": {"jwt": c.sign()}}}, 422, "invalid-payload"),
    Case(
        "features-unknown",
        lambda c: {"body": {"token": c.sign(), "features": ["admin"]}},
        422,
        "unsupported-feature",
    ),
    Case(
        "features-not-a-list",
        lambda c: {"body": {"token": c.sign(), "features": "all"}},
        422,
        "invalid-payload",
    ),
    Case(
        "packages-not-registered",
        lambda c: {"body": {"token": c.sign(), "packages": ["requests"]}},
        422,
        "package-not-authorised",
    ),
    Case(
        "packages-too-many",
        lambda c: {"body": {"token": c.sign(), "packages": [f"p{n}" for n in range(1000)]}},
        422,
        "invalid-payload",
    ),
    Case(
        "legacy-route-alg-none",
        lambda c: {"path": LEGACY_MINT, "body": {"token": _alg_none(c, "none")}},
        422,
        "invalid-token",
    ),
]


# --- running it -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def attacker() -> Iterator[CountingServer]:
    with CountingServer() as server:
        yield server


@pytest.fixture(scope="module")
def static_issuers() -> tuple[TestIssuer, TestIssuer, TestIssuer, TestIssuer]:
    return (
        TestIssuer(OTHER_ISSUER),
        TestIssuer(DISABLED_ISSUER),
        TestIssuer(GOOGLE_URL),
        TestIssuer(ACTIVESTATE_URL),
    )


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(params=["discovery", "static"])
def ctx(
    request: pytest.FixtureRequest,
    idp: FakeIdP,
    idp_issuer: TrustedIssuer,
    attacker: CountingServer,
    attacker_key: rsa.RSAPrivateKey,
    static_issuers: tuple[TestIssuer, TestIssuer, TestIssuer, TestIssuer],
) -> Ctx:
    """Every row runs twice: the GitHub issuer's keys come from OIDC discovery (the IdP on
    127.0.0.1), or the same key is pinned in the database (static JWKS)."""
    if request.param == "static":
        idp.issuer.register("github", static=True)
    other, disabled, google, activestate = static_issuers
    other_row = other.register("gitlab")
    disabled.register("github", enabled=False)
    google.register("google")
    google_publisher(google, projects=("widgets-gcp",))
    activestate.register("activestate")
    activestate_publisher(activestate, projects=("widgets-as",))
    widgets = GitHubPublisher.objects.create(
        issuer=idp_issuer,
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
        repository_owner_id="1001",  # bound on an earlier first use
        repository_id="2002",
    )
    widgets.add_projects(["widgets"])
    gadgets = GitHubPublisher.objects.create(
        issuer=idp_issuer,
        repository_owner="acme",
        repository_name="gadgets",
        workflow_filename="release.yml",
        environment="pypi",
    )
    gadgets.add_projects(["gadgets"])
    gitlab = GitLabPublisher.objects.create(
        issuer=other_row, namespace="acme", project="widgets", workflow_filepath=".gitlab-ci.yml"
    )
    gitlab.add_projects(["widgets-gl"])
    attacker.requests = 0
    return Ctx(idp, attacker, attacker_key, other, disabled, google, activestate)


def test_the_table_is_large_and_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert sum(1 for case in CASES if case.code) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hostile_token(client: Any, ctx: Ctx, case: Case) -> None:
    spec = case.make(ctx)
    if isinstance(spec, str):
        spec = {"body": {"token": spec}}
    path = spec.get("path", MINT)
    raw = spec["raw"] if "raw" in spec else json.dumps(spec["body"]).encode()
    tokens_before = IssuedToken.objects.count()
    spent_before = UsedIdentityToken.objects.count()

    response = client.generic("POST", path, raw, content_type="application/json")
    count("hostile tokens tried")

    body = response.json()
    assert (response.status_code, body.get("code")) == (case.status, case.code), body
    if case.code is None:
        assert body["success"] is True
        assert IssuedToken.objects.count() == tokens_before + 1
    else:
        assert response["Content-Type"] == "application/problem+json"
        assert_problem(response, case.status, case.code)  # PyPI's envelope and RFC 9457
        if case.detail is not None:
            assert case.detail in body["detail"], body
        # Nothing minted, and the identity token is not spent: a refusal can be retried.
        assert IssuedToken.objects.count() == tokens_before
        assert UsedIdentityToken.objects.count() == spent_before
        # The request's token is never echoed back.
        token = spec.get("body", {}).get("token") if isinstance(spec.get("body"), dict) else None
        if isinstance(token, str) and len(token) > 40:
            assert token not in response.content.decode()
        signature = token.rsplit(".", 1)[-1] if isinstance(token, str) else ""
        if len(signature) > 40:
            assert signature[:40] not in response.content.decode()
        if isinstance(spec.get("body"), dict):
            # Every refusal of a parsed request is in the audit trail.
            assert AuditEvent.objects.filter(
                kind=AuditEvent.Kind.EXCHANGE_FAILED, error_code=case.code
            ).exists()
    # Key-location headers and kid tricks caused no fetch anywhere but the issuer's own keys.
    assert ctx.attacker.requests == 0
    assert ctx.idp.jwks_fetches <= 1
