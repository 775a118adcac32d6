"""Trusted publishers: which CI identity may publish which projects.

``Publisher`` is a concrete base table (tokens, audit events and the admin point at it); each
provider adds its identifying fields in a child table and its id to :class:`Provider`. Everything
else about a provider (claim rules, form, CLI options, admin columns) is declared in
``trusted_publishing/providers/<provider>.py`` and registered in ``providers/__init__.py``.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..names import ascii_lower, normalize_project_name


class Provider(models.TextChoices):
    """The CI providers: one member per publisher model below (issuers name theirs, too)."""

    GITHUB = "github", _("GitHub Actions")
    GITLAB = "gitlab", _("GitLab CI/CD")
    GOOGLE = "google", _("Google Cloud")
    ACTIVESTATE = "activestate", _("ActiveState")


#: Why a publisher's rights end when its project is deleted and created again.
PROJECT_RECREATED = (
    "project {project!r} was deleted and created again since this publisher was registered for "
    "it; its owners must register the publisher again"
)


class Publisher(models.Model):
    provider = models.CharField(
        _("provider"), max_length=32, choices=Provider.choices, editable=False
    )
    issuer = models.ForeignKey(
        "trusted_publishing.TrustedIssuer",
        on_delete=models.PROTECT,
        related_name="publishers",
        verbose_name=_("issuer"),
    )
    # Lower-cased identity the exchange looks candidates up by (repository, project path, e-mail…).
    subject = models.CharField(_("subject"), max_length=400, db_index=True, editable=False)
    # Canonical identity (issuer + every identifying field): one row per identity.
    identity_key = models.CharField(max_length=1024, unique=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    # Set while the publisher is pending: its projects are created on the first exchange.
    pending_expires_at = models.DateTimeField(_("pending until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    provider_id: ClassVar[str] = ""

    class Meta:
        verbose_name = _("publisher")
        verbose_name_plural = _("publishers")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["issuer", "subject"], name="tp_publisher_lookup")]

    def __str__(self) -> str:
        specific = self.specific
        if type(specific) is not Publisher:
            return specific.describe()
        return f"{self.get_provider_display()} publisher #{self.pk}"

    # --- identity ------------------------------------------------------------------------
    def describe(self) -> str:  # overridden by each provider
        return f"publisher #{self.pk}"

    def identity_fields(self) -> tuple[str, ...]:  # overridden by each provider
        raise NotImplementedError

    def compute_subject(self) -> str:  # overridden by each provider
        raise NotImplementedError

    def compute_identity_key(self) -> str:
        """Issuer + every identifying field: two publishers with the same key are the same."""
        return "\x1f".join([self.provider_id, str(self.issuer_id), *self.identity_fields()])

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if type(self) is not Publisher:
            self.provider = self.provider_id
            self.subject = self.compute_subject()
            self.identity_key = self.compute_identity_key()
        super().save(*args, **kwargs)

    @property
    def specific(self) -> Publisher:
        """The provider-specific row for this publisher."""
        if type(self) is not Publisher:
            return self
        for model in PUBLISHER_MODELS.values():
            if model.provider_id == self.provider:
                accessor = model._meta.model_name
                try:
                    return getattr(self, accessor)
                except model.DoesNotExist:
                    break
        return self

    # --- state ---------------------------------------------------------------------------
    @property
    def is_pending(self) -> bool:
        return self.pending_expires_at is not None

    @property
    def pending_expired(self) -> bool:
        return self.pending_expires_at is not None and self.pending_expires_at <= timezone.now()

    @property
    def can_mint(self) -> bool:
        """Enabled, and either ordinary or pending and not yet expired (defined once: the
        exchange, admin and CLI ask this)."""
        return self.enabled and not self.pending_expired

    def upload_refusal(self, project: str) -> str:
        """Why this publisher may not upload to ``project`` now ("" if it may): enabled, not
        pending, registered for the project, and that project is still the host's same one."""
        if not self.enabled:
            return "the token's publisher is disabled"
        if self.is_pending:
            return "the token's publisher is still pending"
        registered = self.projects.filter(name=project).first()
        if registered is None:
            return f"the publisher is no longer registered for project {project!r}"
        if registered.host_project_changed():
            return PROJECT_RECREATED.format(project=project)
        return ""

    def project_names(self) -> list[str]:
        return sorted(p.name for p in self.projects.all())

    def add_projects(self, names: list[str] | tuple[str, ...]) -> None:
        for name in names:
            PublisherProject.objects.get_or_create(
                publisher=self, name=normalize_project_name(name)
            )


class PublisherProject(models.Model):
    """A project (PEP 503 normalised name) a publisher may upload to."""

    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(_("project"), max_length=255, db_index=True)
    # The host's own id of the project (HostIntegration.project_key), bound when the project is
    # first seen: a project deleted and created again by someone else is another project, and
    # this publisher's rights do not carry over to it.
    host_key = models.CharField(_("host project id"), max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("publisher project")
        verbose_name_plural = _("publisher projects")
        constraints = [
            models.UniqueConstraint(
                fields=["publisher", "name"], name="tp_publisher_project_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.name = normalize_project_name(self.name)
        if not self.host_key:
            from ..integration import get_integration

            self.host_key = get_integration().project_key(self.name) or ""
        super().save(*args, **kwargs)

    def host_project_changed(self) -> bool:
        """True if the host's project of this name is not the one this row was bound to (it
        was deleted and created again); an unbound row is bound now."""
        from ..integration import get_integration

        current = get_integration().project_key(self.name)
        if not current:
            return False
        if not self.host_key:
            type(self).objects.filter(pk=self.pk, host_key="").update(host_key=current)
            self.host_key = current
            return False
        return self.host_key != current


class GitHubPublisher(Publisher):
    provider_id = Provider.GITHUB

    repository_owner = models.CharField(_("owner"), max_length=100)
    repository_name = models.CharField(_("repository"), max_length=100)
    workflow_filename = models.CharField(_("workflow file"), max_length=255)
    # Lower-cased; empty means any environment (or none).
    environment = models.CharField(_("environment"), max_length=255, blank=True)
    # Immutable ids: bound on the first successful exchange, enforced afterwards, so a deleted
    # and re-registered owner or repository of the same name cannot publish (resurrection).
    repository_owner_id = models.CharField(_("owner id"), max_length=64, blank=True)
    repository_id = models.CharField(_("repository id"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("GitHub publisher")
        verbose_name_plural = _("GitHub publishers")

    @property
    def repository(self) -> str:
        return f"{self.repository_owner}/{self.repository_name}"

    def describe(self) -> str:
        env = f" [{self.environment}]" if self.environment else ""
        return f"GitHub {self.repository} {self.workflow_filename}{env}"

    def compute_subject(self) -> str:
        return self.repository.lower()

    def identity_fields(self) -> tuple[str, ...]:
        return (self.repository.lower(), self.workflow_filename, ascii_lower(self.environment))

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # ASCII only: str.lower() folds look-alikes (the Kelvin sign) onto ASCII letters.
        self.environment = ascii_lower(self.environment.strip())
        self.workflow_filename = self.workflow_filename.strip()
        super().save(*args, **kwargs)


class GitLabPublisher(Publisher):
    provider_id = Provider.GITLAB

    namespace = models.CharField(_("namespace"), max_length=255)
    project = models.CharField(_("project"), max_length=255)
    workflow_filepath = models.CharField(_("CI config file"), max_length=255)
    # Case-sensitive, as GitLab environments are; empty means any environment.
    environment = models.CharField(_("environment"), max_length=255, blank=True)
    # Bound on first use, enforced afterwards (resurrection of a namespace or project path).
    namespace_id = models.CharField(_("namespace id"), max_length=64, blank=True)
    project_id = models.CharField(_("project id"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("GitLab publisher")
        verbose_name_plural = _("GitLab publishers")

    @property
    def project_path(self) -> str:
        return f"{self.namespace}/{self.project}"

    def describe(self) -> str:
        env = f" [{self.environment}]" if self.environment else ""
        return f"GitLab {self.project_path} {self.workflow_filepath}{env}"

    def compute_subject(self) -> str:
        return self.project_path.lower()

    def identity_fields(self) -> tuple[str, ...]:
        return (self.project_path.lower(), self.workflow_filepath, self.environment)

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.workflow_filepath = self.workflow_filepath.strip()
        super().save(*args, **kwargs)


class GooglePublisher(Publisher):
    provider_id = Provider.GOOGLE

    email = models.EmailField(_("service account e-mail"), max_length=254)
    # Service account unique id; empty means any account with this e-mail.
    sub = models.CharField(_("subject (sub)"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("Google Cloud publisher")
        verbose_name_plural = _("Google Cloud publishers")

    def describe(self) -> str:
        sub = f" [{self.sub}]" if self.sub else ""
        return f"Google {self.email}{sub}"

    def compute_subject(self) -> str:
        return self.email.lower()

    def identity_fields(self) -> tuple[str, ...]:
        return (self.email.lower(), self.sub)


class ActiveStatePublisher(Publisher):
    provider_id = Provider.ACTIVESTATE

    organization = models.CharField(_("organization"), max_length=255)
    activestate_project_name = models.CharField(_("ActiveState project"), max_length=255)
    actor = models.CharField(_("actor"), max_length=255, blank=True)
    actor_id = models.CharField(_("actor id"), max_length=255)

    class Meta:
        verbose_name = _("ActiveState publisher")
        verbose_name_plural = _("ActiveState publishers")

    def describe(self) -> str:
        return f"ActiveState {self.organization}/{self.activestate_project_name} ({self.actor_id})"

    def compute_subject(self) -> str:
        return f"{self.organization}/{self.activestate_project_name}".lower()

    def identity_fields(self) -> tuple[str, ...]:
        return (
            self.organization.lower(),
            self.activestate_project_name.lower(),
            self.actor_id,
        )


#: Every provider's publisher model by provider id: the concrete subclasses defined above.
PUBLISHER_MODELS: dict[str, type[Publisher]] = {
    model.provider_id: model for model in Publisher.__subclasses__()
}
