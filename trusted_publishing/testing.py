"""Helpers for testing an index that uses this app (and for this app's own tests).

:class:`TestIssuer` plays an identity provider: it owns an RSA key, publishes a JWKS, and signs
identity tokens with the claims each CI provider really sends. Nothing here touches the network.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .conf import tp_settings

#: The registered JWT claims (RFC 7519 section 4.1): every claim helper accepts them.
REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})

#: Every claim a real token of each provider can carry: the claim helpers accept these (and the
#: registered claims) as keyword overrides, anything else is a TypeError. The app's own tests pin
#: the same sets (``ALL_KNOWN_CLAIMS`` in tests/providers/test_<provider>.py).
KNOWN_CLAIMS: dict[str, frozenset[str]] = {
    "github": frozenset(
        {
            *("iss", "aud", "sub", "exp", "iat", "nbf", "jti"),
            *("repository", "repository_id", "repository_owner", "repository_owner_id"),
            *("repository_visibility", "enterprise", "enterprise_id", "issuer_scope"),
            *("ref", "ref_type", "ref_protected", "sha", "head_ref", "base_ref", "event_name"),
            *("workflow", "workflow_ref", "workflow_sha", "job_workflow_ref", "job_workflow_sha"),
            *("environment", "environment_node_id", "runner_environment"),
            *("run_id", "run_number", "run_attempt", "check_run_id", "actor", "actor_id"),
        }
    ),
    "gitlab": frozenset(
        {
            *("iss", "aud", "sub", "exp", "iat", "nbf", "jti", "target_audience"),
            *("namespace_id", "namespace_path", "project_id", "project_path"),
            *("job_namespace_id", "job_namespace_path", "job_project_id", "job_project_path"),
            *("user_id", "user_login", "user_email", "user_access_level", "user_identities"),
            *("groups_direct", "pipeline_id", "pipeline_source", "job_id", "job_source"),
            *("ref", "ref_type", "ref_path", "ref_protected", "sha", "project_visibility"),
            *("environment", "environment_protected", "deployment_tier", "environment_action"),
            *("runner_id", "runner_environment", "ci_config_ref_uri", "ci_config_sha"),
        }
    ),
    "google": frozenset(
        {"iss", "aud", "sub", "exp", "iat", "nbf", "azp", "email", "email_verified", "google"}
    ),
    "activestate": frozenset(
        {
            *("iss", "aud", "sub", "exp", "iat", "nbf"),
            *("organization", "organization_id", "project", "project_id", "project_path"),
            *("project_visibility", "actor", "actor_id", "builder", "artifact_id", "ingredient"),
        }
    ),
}

#: Families of claims a provider names freely (GitHub: organisation custom properties).
KNOWN_CLAIM_PREFIXES: dict[str, tuple[str, ...]] = {"github": ("repo_property_",)}


class TestIssuer:
    """An RSA-keyed OIDC issuer for tests. ``url`` is the ``iss`` of every token it signs."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        url: str = "https://issuer.test",
        *,
        kid: str | None = None,
        key_size: int = 2048,
        private_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        """``url`` is the issuer URL (``iss``), ``kid`` the key id (random if None). A new RSA key
        of ``key_size`` bits is generated unless ``private_key`` is given (share one key between
        issuers to save the generation time, as the pytest plugin does)."""
        self.url = url
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private_key = private_key or rsa.generate_private_key(
            public_exponent=65537, key_size=key_size
        )

    # --- keys ------------------------------------------------------------------------------
    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (``kid``, ``use: sig``, ``alg: RS256``)."""
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return jwk

    def jwks(self) -> dict[str, Any]:
        """The JWK Set an issuer publishes at its ``jwks_uri``: ``{"keys": [<public JWK>]}``."""
        return {"keys": [self.public_jwk()]}

    def private_pem(self) -> bytes:
        """The private key, PKCS#8 PEM (unencrypted)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        """The public key, SubjectPublicKeyInfo PEM."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def rotate(self, kid: str | None = None) -> None:
        """Replace the signing key (new ``kid``), as a provider does on rotation."""
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def discovery_document(self, jwks_uri: str | None = None) -> dict[str, Any]:
        """The OpenID discovery document (``/.well-known/openid-configuration``) naming this
        issuer; ``jwks_uri`` defaults to ``<url>/.well-known/jwks``."""
        return {
            "issuer": self.url,
            "jwks_uri": jwks_uri or f"{self.url}/.well-known/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # --- tokens ----------------------------------------------------------------------------
    def sign(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        kid: str | None = None,
    ) -> str:
        """``claims`` signed with RS256: a compact JWT. The header carries this issuer's ``kid``
        (``kid=`` sets another) and ``typ: JWT``; ``headers`` adds or replaces header fields."""
        hdrs = {"kid": kid if kid is not None else self.kid, "typ": "JWT"}
        hdrs.update(headers or {})
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=hdrs)

    def base_claims(
        self, *, audience: str | None = None, lifetime: int = 300, **extra: Any
    ) -> dict[str, Any]:
        """``iss``, ``aud`` (``audience``, else the configured ``AUDIENCE``), ``iat``, ``nbf``,
        ``exp`` (``lifetime`` seconds from now) and a fresh ``jti``, updated with ``extra``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": audience if audience is not None else tp_settings.AUDIENCE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
        }
        claims.update(extra)
        return claims

    def github_claims(
        self,
        repository: str = "acme/widgets",
        workflow: str = "release.yml",
        *,
        ref: str = "refs/tags/v1.0.0",
        environment: str | None = None,
        owner_id: str = "1001",
        repository_id: str = "2002",
        event_name: str = "push",
        audience: str | None = None,
        lifetime: int = 300,
        extra_claims: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A GitHub Actions token's claims. ``overrides`` replace (or add) claims a GitHub token
        can carry; ``extra_claims`` adds claims it never carries."""
        extra = self._overrides("github", "github_claims", overrides, extra_claims, audience)
        owner = repository.split("/", 1)[0]
        workflow_ref = f"{repository}/.github/workflows/{workflow}@{ref}"
        sha = "714a629c0b401fdce83e847fc9589983fc6f46bc"
        claims = self.base_claims(
            audience=audience,
            lifetime=lifetime,
            sub=f"repo:{repository}:ref:{ref}",
            repository=repository,
            repository_owner=owner,
            repository_owner_id=owner_id,
            repository_id=repository_id,
            repository_visibility="private",
            ref=ref,
            ref_type="tag" if ref.startswith("refs/tags/") else "branch",
            sha=sha,
            workflow="Release",
            workflow_ref=workflow_ref,
            workflow_sha=sha,
            job_workflow_ref=workflow_ref,
            job_workflow_sha=sha,
            event_name=event_name,
            actor="octocat",
            actor_id="12",
            run_id="9876543210",
            run_number="10",
            run_attempt="1",
            runner_environment="github-hosted",
        )
        if environment is not None:
            claims["environment"] = environment
            claims["sub"] = f"repo:{repository}:environment:{environment}"
        claims.update(extra)
        return claims

    def gitlab_claims(
        self,
        project_path: str = "acme/widgets",
        ci_config: str = ".gitlab-ci.yml",
        *,
        ref_path: str = "refs/tags/v1.0.0",
        environment: str | None = None,
        namespace_id: str = "72",
        project_id: str = "20",
        audience: str | None = None,
        lifetime: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A GitLab CI token's claims (``overrides`` and ``extra_claims`` as for GitHub)."""
        extra = self._overrides("gitlab", "gitlab_claims", overrides, extra_claims, audience)
        host = self.url.split("://", 1)[-1].rstrip("/")
        namespace = project_path.rsplit("/", 1)[0]
        ref = ref_path.rsplit("/", 1)[-1]
        sha = "714a629c0b401fdce83e847fc9589983fc6f46bc"
        claims = self.base_claims(
            audience=audience,
            lifetime=lifetime,
            sub=f"project_path:{project_path}:ref_type:tag:ref:{ref}",
            namespace_id=namespace_id,
            namespace_path=namespace,
            project_id=project_id,
            project_path=project_path,
            job_project_id=project_id,
            job_project_path=project_path,
            job_namespace_id=namespace_id,
            job_namespace_path=namespace,
            user_id="1",
            user_login="release-bot",
            pipeline_id="574",
            pipeline_source="push",
            job_id="302",
            ref=ref,
            ref_type="tag",
            ref_path=ref_path,
            ref_protected="true",
            runner_id=1,
            runner_environment="gitlab-hosted",
            sha=sha,
            project_visibility="private",
            ci_config_ref_uri=f"{host}/{project_path}//{ci_config}@{ref_path}",
            ci_config_sha=sha,
        )
        if environment is not None:
            claims["environment"] = environment
        claims.update(extra)
        return claims

    def google_claims(
        self,
        email: str = "release@acme-ci.iam.gserviceaccount.com",
        *,
        sub: str = "111122223333444455556",
        audience: str | None = None,
        lifetime: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A Google service account's ID token claims (as for GitHub)."""
        extra = self._overrides("google", "google_claims", overrides, extra_claims, audience)
        claims = self.base_claims(
            audience=audience,
            lifetime=lifetime,
            email=email,
            email_verified=True,
            sub=sub,
            azp=sub,
        )
        claims.pop("jti")  # Google ID tokens carry no jti
        claims.update(extra)
        return claims

    def activestate_claims(
        self,
        organization: str = "acme",
        project: str = "widgets",
        *,
        actor_id: str = "a1b2c3",
        audience: str | None = None,
        lifetime: int = 300,
        extra_claims: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """An ActiveState token's claims (as for GitHub)."""
        extra = self._overrides(
            "activestate", "activestate_claims", overrides, extra_claims, audience
        )
        claims = self.base_claims(
            audience=audience,
            lifetime=lifetime,
            sub=f"org:{organization}:project:{project}",
            organization=organization,
            project=project,
            actor="release-bot",
            actor_id=actor_id,
            builder="pypi-publisher",
            organization_id="o-1",
            project_id="p-1",
            project_path=f"{organization}/{project}",
            project_visibility="private",
        )
        claims.pop("jti")
        claims.update(extra)
        return claims

    @staticmethod
    def _overrides(
        provider: str,
        helper: str,
        overrides: dict[str, Any],
        extra_claims: Mapping[str, Any] | None,
        audience: str | None,
    ) -> dict[str, Any]:
        """The claims to set last. A keyword that is neither a parameter nor a claim this
        provider's tokens carry is a mistake (``audiance=``), not a new claim: TypeError."""
        known = KNOWN_CLAIMS[provider] | REGISTERED_CLAIMS
        prefixes = KNOWN_CLAIM_PREFIXES.get(provider, ())
        unknown = sorted(n for n in overrides if n not in known and not n.startswith(prefixes))
        if unknown:
            raise TypeError(
                f"{helper}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: "
                f"neither a parameter nor a claim of {provider} tokens (pass claims those "
                "tokens never carry in extra_claims={...})"
            )
        if audience is not None and "aud" in overrides:
            raise TypeError(f"{helper}() got both audience= and aud=")
        return {**overrides, **(extra_claims or {})}

    # --- database --------------------------------------------------------------------------
    def register(self, provider: str = "github", *, static: bool = True, **fields: Any):  # type: ignore[no-untyped-def]
        """Create (or update) the ``TrustedIssuer`` row for this issuer."""
        from .models import KeySource, TrustedIssuer

        issuer, _ = TrustedIssuer.objects.update_or_create(
            url=self.url,
            defaults={
                "provider": provider,
                "name": fields.pop("name", f"test {provider} issuer"),
                "key_source": KeySource.STATIC if static else KeySource.DISCOVERY,
                "static_jwks": self.jwks() if static else None,
                **fields,
            },
        )
        return issuer
