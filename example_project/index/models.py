"""Projects, releases and distribution files of the example index."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from trusted_publishing.names import normalize_project_name


def _file_path(instance: File, filename: str) -> str:
    # One directory per project; filenames are unique index-wide, so no collisions.
    return f"{instance.release.project.normalized_name}/{instance.filename}"


class Project(models.Model):
    name = models.CharField(max_length=200, help_text="Display name, as first uploaded.")
    normalized_name = models.CharField(max_length=200, unique=True, editable=False)
    maintainers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="index_projects",
        help_text="Users who may upload with a password (staff: anywhere).",
    )
    archived = models.BooleanField(
        default=False, help_text="Archived projects accept no uploads from anyone."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(
        max_length=200, blank=True, help_text="User name, or the trusted publisher that created it."
    )

    class Meta:
        ordering = ["normalized_name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.normalized_name = normalize_project_name(self.name)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("index:simple-project", args=[self.normalized_name])


class Release(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=100, help_text="Normalised (PEP 440) version.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="index_unique_release")
        ]

    def __str__(self) -> str:
        return f"{self.project.name} {self.version}"


class File(models.Model):
    class PackageType(models.TextChoices):
        SDIST = "sdist", "Source distribution"
        WHEEL = "bdist_wheel", "Wheel"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=300, unique=True)
    normalized_filename = models.CharField(
        max_length=300,
        unique=True,
        editable=False,
        help_text="The filename with its name and version normalised: 'Kit-2.0.tar.gz' and "
        "'kit-2.0.tar.gz' are the same file.",
    )
    content = models.FileField(upload_to=_file_path, max_length=500)
    sha256 = models.CharField("SHA-256", max_length=64, db_index=True)
    blake2_256 = models.CharField("BLAKE2b-256", max_length=64)
    size = models.PositiveBigIntegerField()
    packagetype = models.CharField(max_length=32, choices=PackageType.choices)
    python_version = models.CharField(max_length=100, blank=True)
    requires_python = models.CharField(max_length=200, blank=True)
    uploaded_at = models.DateTimeField(auto_now_add=True)
    uploaded_by = models.CharField(
        max_length=300, help_text="User name or trusted publisher that uploaded the file."
    )
    uploaded_via_trusted_publisher = models.BooleanField(default=False)
    publisher_label = models.CharField(
        max_length=400, blank=True, help_text="e.g. 'GitHub acme/widgets release.yml (pypi)'"
    )
    attestations = models.JSONField(
        null=True, blank=True, help_text="PEP 740 attestations sent with the upload (kept as is)."
    )

    class Meta:
        ordering = ["filename"]

    def __str__(self) -> str:
        return self.filename

    def get_absolute_url(self) -> str:
        return reverse(
            "index:file", args=[self.release.project.normalized_name, self.filename]
        )
