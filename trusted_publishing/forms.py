"""Validation for everything an operator registers: issuers, publishers and their projects.

One set of rules serves the admin and the ``trusted_publishing`` management command. Each
provider's publisher form (a :class:`PublisherForm` in ``providers/<provider>.py``) follows PyPI's
publisher forms (warehouse ``oidc/forms``) so a configuration that PyPI accepts is accepted here
and vice versa. Nothing here calls the network: owner and repository ids are bound by the first
successful exchange instead of being resolved at registration.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import tp_settings
from .models import KeySource, Provider, Publisher, PublisherProject, TrustedIssuer
from .names import is_valid_project_name, normalize_project_name

# Members that only a private (or symmetric) key has; a JWKS for verification never needs them.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


# --- issuers ------------------------------------------------------------------------------------
def validate_issuer_url(url: str) -> str:
    """Return ``url`` if it can be a trusted issuer; raise ValidationError naming the fix."""
    url = (url or "").strip()
    if not url:
        raise ValidationError(_("Enter the issuer URL (exactly the `iss` claim of its tokens)."))
    if any(ch.isspace() for ch in url) or any(ord(ch) < 32 for ch in url):
        raise ValidationError(_("The issuer URL must not contain spaces or control characters."))
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(
            _(
                "The issuer URL may not have a query, fragment or credentials; use exactly the "
                "`iss` claim, e.g. https://ghe.example.com/_services/token."
            )
        )
    if not parts.hostname:
        raise ValidationError(
            _("The issuer URL needs a host name, e.g. https://gitlab.example.com.")
        )
    if parts.scheme == "https":
        return url
    if parts.scheme == "http":
        if not _is_loopback(parts.hostname):
            raise ValidationError(
                _(
                    "Issuer URLs must use https:// (http:// is accepted only for a loopback "
                    "test issuer)."
                )
            )
        if not tp_settings.ALLOW_INSECURE_LOOPBACK_ISSUERS:
            raise ValidationError(
                _(
                    "http:// issuers on loopback are refused unless "
                    "TRUSTED_PUBLISHING['ALLOW_INSECURE_LOOPBACK_ISSUERS'] is True (tests and "
                    "local development only); use https://."
                )
            )
        return url
    raise ValidationError(_("Issuer URLs must start with https://."))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_static_jwks(value: Any) -> dict[str, Any]:
    """Validate a static JWKS (a JSON string or an already-decoded object) and return it.

    Every key must be an RSA *public* key with a ``kid`` that PyJWT can load; the messages
    never echo key material.
    """
    from jwt import PyJWK
    from jwt.exceptions import PyJWKError, PyJWTError

    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValidationError(
                _("The JWKS is not valid JSON (%(error)s)."), params={"error": exc.args[0]}
            ) from None
    if not isinstance(value, dict):
        raise ValidationError(_('The JWKS must be a JSON object like {"keys": [...]}.'))
    keys = value.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValidationError(_('The JWKS needs a non-empty "keys" list.'))
    seen: set[str] = set()
    for index, key in enumerate(keys, start=1):
        if not isinstance(key, dict):
            raise ValidationError(_("Key %(n)s is not a JSON object."), params={"n": index})
        if key.get("kty") != "RSA":
            raise ValidationError(
                _('Key %(n)s is not an RSA key (kty must be "RSA"); only RS256 is supported.'),
                params={"n": index},
            )
        private = [m for m in PRIVATE_JWK_MEMBERS if m in key]
        if private:
            raise ValidationError(
                _(
                    "Key %(n)s contains private key members (%(members)s). Paste only the public "
                    "keys: the issuer's published JWKS has none of these."
                ),
                params={"n": index, "members": ", ".join(private)},
            )
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValidationError(_('Key %(n)s has no "kid".'), params={"n": index})
        if kid in seen:
            raise ValidationError(_("Key id %(kid)s appears twice."), params={"kid": kid[:64]})
        seen.add(kid)
        try:
            PyJWK(key, algorithm="RS256")
        except (PyJWKError, PyJWTError, ValueError, TypeError, KeyError):
            raise ValidationError(
                _("Key %(n)s (kid %(kid)s) is not a usable RSA public key."),
                params={"n": index, "kid": kid[:64]},
            ) from None
    return value


class JWKSField(forms.JSONField):
    """A textarea for a JWKS; empty means none."""

    widget = forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField"})

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        try:
            return super().to_python(value)
        except ValidationError:
            raise ValidationError(
                _('The JWKS is not valid JSON; paste the issuer\'s {"keys": [...]} document.')
            ) from None


class TrustedIssuerForm(forms.ModelForm):
    static_jwks = JWKSField(
        label=_("Static JWKS"),
        required=False,
        help_text=_(
            'Only for key source "static": the issuer\'s public JSON Web Key Set '
            '({"keys": [...]}), for issuers this index cannot reach.'
        ),
    )

    class Meta:
        model = TrustedIssuer
        fields = ["url", "provider", "name", "key_source", "static_jwks", "enabled"]

    def clean_url(self) -> str:
        return validate_issuer_url(self.cleaned_data.get("url", ""))

    def clean_provider(self) -> str:
        provider = self.cleaned_data["provider"]
        instance = self.instance
        if instance.pk and provider != instance.provider:
            count = instance.publishers.count()
            if count:
                raise ValidationError(
                    _(
                        "%(count)d %(old)s publisher(s) use this issuer, so its provider cannot "
                        "change; add a separate issuer instead."
                    ),
                    params={"count": count, "old": instance.get_provider_display()},
                )
        return provider

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        source = cleaned.get("key_source")
        jwks = cleaned.get("static_jwks")
        if source == KeySource.STATIC:
            if jwks is None:
                self.add_error(
                    "static_jwks",
                    _(
                        'Key source "static" needs the issuer\'s JWKS; paste it here (or choose '
                        "discovery)."
                    ),
                )
            else:
                try:
                    cleaned["static_jwks"] = parse_static_jwks(jwks)
                except ValidationError as exc:
                    self.add_error("static_jwks", exc)
        elif jwks is not None:
            # Keys kept next to a discovery issuer would be misleading: they are never used.
            try:
                cleaned["static_jwks"] = parse_static_jwks(jwks)
            except ValidationError as exc:
                self.add_error("static_jwks", exc)
            else:
                self.add_error(
                    "static_jwks",
                    _(
                        'A static JWKS is only used with key source "static"; choose it or clear '
                        "this field."
                    ),
                )
        return cleaned


# --- publishers ---------------------------------------------------------------------------------
WORKFLOW_SUFFIXES = (".yml", ".yaml")


def validate_workflow_suffix(value: str, what: str) -> None:
    if not value.endswith(WORKFLOW_SUFFIXES):
        raise ValidationError(_("%(what)s must end with .yml or .yaml"), params={"what": what})


def identity_key_for(publisher: Publisher) -> str:
    """The identity key ``publisher.save()`` will store (to find an identical publisher first)."""
    return publisher.compute_identity_key()


class PublisherForm(forms.ModelForm):
    """Common part: issuer restricted to the provider, state flags, duplicate detection.

    A provider's form subclasses this with ``Meta.model``, ``Meta.fields`` (``issuer``, the
    identifying fields, ``enabled``), help texts and ``clean_<field>`` methods.
    """

    pending = forms.BooleanField(
        label=_("Pending (project does not exist yet)"),
        required=False,
        help_text=_(
            "Creates the project(s) on the first successful publish. Expires unused after the "
            "PENDING_PUBLISHER_LIFETIME setting (30 days by default)."
        ),
    )

    @property
    def provider_id(self) -> str:
        """The provider whose issuers this form offers (the model's, unless overridden)."""
        return self._meta.model.provider_id

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider = self.provider_id
        field = self.fields.get("issuer")
        if field is not None:
            field.queryset = TrustedIssuer.objects.filter(provider=provider)  # type: ignore[attr-defined]
            field.help_text = _(
                "Only issuers of this provider are listed; add a self-hosted one under "
                "Trusted issuers."
            )
            if self.instance.pk is None and not self.initial.get("issuer"):
                default = default_issuer(provider)
                if default is not None:
                    self.initial["issuer"] = default.pk
        if self.instance.pk is not None:
            self.fields["pending"].initial = self.instance.is_pending

    def clean_issuer(self) -> TrustedIssuer:
        issuer = self.cleaned_data["issuer"]
        if issuer.provider != self.provider_id:
            raise ValidationError(
                _("Issuer %(url)s is a %(provider)s issuer, not %(wanted)s."),
                params={
                    "url": issuer.url,
                    "provider": issuer.get_provider_display(),
                    "wanted": dict(Provider.choices).get(self.provider_id, self.provider_id),
                },
            )
        return issuer

    def _post_clean(self) -> None:
        super()._post_clean()
        instance = self.instance
        pending = self.cleaned_data.get("pending")
        if pending and instance.pending_expires_at is None:
            instance.pending_expires_at = timezone.now() + timedelta(
                seconds=tp_settings.PENDING_PUBLISHER_LIFETIME
            )
        elif not pending and "pending" in self.cleaned_data:
            instance.pending_expires_at = None
        if self.errors or instance.issuer_id is None:
            return
        key = identity_key_for(instance)
        clash = Publisher.objects.filter(identity_key=key).exclude(pk=instance.pk).first()
        if clash is not None:
            self.add_error(
                None,
                ValidationError(
                    _(
                        "Publisher #%(id)s already has exactly this configuration; add the "
                        "project to it instead."
                    ),
                    params={"id": clash.pk},
                    code="duplicate",
                ),
            )


def default_issuer(provider: str) -> TrustedIssuer | None:
    """The first public issuer the provider declares that is trusted (else the only issuer of
    that provider)."""
    from .providers import PROVIDERS  # the provider modules import this one

    issuers = TrustedIssuer.objects.filter(provider=provider)
    spec = PROVIDERS.get(provider)
    for url in spec.public_issuers if spec else ():
        found = issuers.filter(url=url).first()
        if found is not None:
            return found
    candidates = list(issuers[:2])
    return candidates[0] if len(candidates) == 1 else None


# --- projects -----------------------------------------------------------------------------------
def clean_project_name(name: str) -> str:
    """Validate a project name (PEP 508) and return its normalised (PEP 503) form."""
    name = (name or "").strip()
    if not is_valid_project_name(name):
        raise ValidationError(
            _(
                "%(name)r is not a valid project name: use letters, digits and . _ - , starting "
                "and ending with a letter or digit."
            ),
            params={"name": name[:100]},
        )
    return normalize_project_name(name)


def pending_conflicts(names: list[str]) -> list[str]:
    """Projects that already exist, so a pending publisher for them would never be used."""
    from .integration import get_integration

    integration = get_integration()
    return [name for name in names if integration.project_exists(name)]


def unknown_projects(names: list[str]) -> list[str]:
    """Projects the host does not have: an ordinary publisher for them would pre-claim the name
    for whoever creates it later."""
    from .integration import get_integration

    return get_integration().missing_projects(names)


NOT_ON_THIS_INDEX = _(
    "Project(s) %(names)s do not exist on this index. An ordinary publisher may only upload to "
    "existing projects; create the project first, or register a pending publisher (tick "
    '"pending", or `--pending` on the command line) so that its first publish creates it.'
)


class PublisherProjectForm(forms.ModelForm):
    class Meta:
        model = PublisherProject
        fields = ["name"]

    def clean_name(self) -> str:
        return clean_project_name(self.cleaned_data.get("name", ""))


class PublisherProjectFormSet(BaseInlineFormSet):
    """At least one project; a pending publisher only for projects that do not exist yet."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        names = [
            form.cleaned_data["name"]
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("name")
        ]
        if not names:
            raise ValidationError(_("Add at least one project this publisher may upload to."))
        if self.instance is not None and self.instance.pending_expires_at is None:
            missing = unknown_projects(names)
            if missing:
                raise ValidationError(NOT_ON_THIS_INDEX, params={"names": ", ".join(missing)})
        if self.instance is not None and self.instance.pending_expires_at is not None:
            existing = pending_conflicts(names)
            if existing:
                raise ValidationError(
                    _(
                        "Project(s) %(names)s already exist: a pending publisher only creates new "
                        'projects. Untick "pending" to register an ordinary publisher.'
                    ),
                    params={"names": ", ".join(existing)},
                )
