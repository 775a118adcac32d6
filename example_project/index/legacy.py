"""``POST /legacy/``: the upload API twine, uv, pdm, maturin, hatch and flit speak.

Errors follow PyPI: a status code with a one-line, human reason both in the status line and in
the ``text/plain`` body, because that is what the clients print (twine shows the status line, uv
the body) and how they recognise "File already exists" for --skip-existing / --check-url.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from trusted_publishing.names import is_valid_project_name, normalize_project_name
from trusted_publishing.permissions import accepts_upload_tokens
from trusted_publishing.uploads import check_trusted_upload

from .auth import NotAuthenticated, Throttled, Uploader, authenticate_uploader
from .distfile import InvalidDistribution, normalized_filename, read_metadata
from .models import File, Project, Release

logger = logging.getLogger(__name__)

METADATA_HELP = (
    "See https://packaging.python.org/specifications/core-metadata for more information."
)
_EXTENSIONS = {".whl": File.PackageType.WHEEL, ".tar.gz": File.PackageType.SDIST,
               ".zip": File.PackageType.SDIST}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FILE_REUSE_HELP = "See https://pypi.org/help/#file-name-reuse for more information."


class UploadError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _reply(status: int, message: str, *, retry_after: int | None = None) -> HttpResponse:
    # The status line must be one latin-1 line; the body carries the same text.
    line = " ".join(message.split())[:300].encode("latin-1", "replace").decode("latin-1")
    response = HttpResponse(message + "\n", status=status, reason=line,
                            content_type="text/plain; charset=utf-8")
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="upload"'
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _invalid(field: str, value: str, error: str) -> UploadError:
    return UploadError(
        400, f"{value!r} is an invalid value for {field}. Error: {error} {METADATA_HELP}"
    )


class _Upload:
    """The validated form of one upload request."""

    def __init__(self, request: HttpRequest) -> None:
        post = request.POST
        # PostgreSQL refuses NUL in text and jsonb: refuse it here, before anything is stored
        # (PyPI's wording), whichever field carries it.
        for field, values in post.lists():
            if "\x00" in field or any("\x00" in value for value in values):
                raise UploadError(400, f"Invalid value for {field.replace(chr(0), '')!r}. "
                                       "Error: Null bytes are not allowed.")
        if post.get(":action") != "file_upload":
            raise UploadError(400, "Unknown action: use ':action' = 'file_upload'.")
        if post.get("protocol_version", "1") != "1":
            raise UploadError(400, "Unknown protocol version.")

        self.name = post.get("name", "").strip()
        if not self.name:
            raise _invalid("Name", "", "This field is required.")
        if not is_valid_project_name(self.name):
            raise _invalid("Name", self.name,
                           "Start and end with a letter or numeral containing only ASCII "
                           "numeric and '.', '_' and '-'.")
        self.normalized_name = normalize_project_name(self.name)

        raw_version = post.get("version", "").strip()
        if not raw_version:
            raise _invalid("Version", "", "This field is required.")
        try:
            self.version = Version(raw_version)
        except InvalidVersion:
            raise _invalid("Version", raw_version,
                           "Start and end with a letter or numeral containing only ASCII "
                           "numeric and '.', '_' and '-'.") from None

        self.filetype = post.get("filetype", "")
        if self.filetype not in File.PackageType.values:
            raise UploadError(400, "Invalid value for filetype. Error: Use a known file type "
                                   "(sdist or bdist_wheel).")
        self.pyversion = post.get("pyversion", "")[:100]
        self.requires_python = post.get("requires_python", "")[:200]

        content = request.FILES.get("content")
        if not isinstance(content, UploadedFile):
            raise UploadError(400, "Upload payload does not have a file.")
        self.content = content
        self.filename = content.name or ""
        self._check_filename()
        self._check_size()
        self._check_digests(post)
        self.attestations = self._attestations(post.get("attestations"))
        self._check_metadata()
        self.normalized_filename = normalized_filename(self.filename)

    def _check_filename(self) -> None:
        filename = self.filename
        if _CONTROL.search(filename):
            raise UploadError(400, "Cannot upload a file with non-printable characters "
                                   "(ordinals 0-31) or the DEL character (ordinal 127) in the "
                                   "name.")
        if "/" in filename or "\\" in filename or filename.startswith("."):
            raise UploadError(400, f"Invalid filename {filename!r}.")
        extension = next((ext for ext in _EXTENSIONS if filename.endswith(ext)), None)
        if extension is None:
            raise UploadError(400, "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
                                   "See https://peps.python.org/pep-0527 for more information.")
        if _EXTENSIONS[extension] != self.filetype:
            raise UploadError(400, f"Invalid value for filetype. Error: {self.filetype!r} does not "
                                   f"match the file extension of {filename!r}.")
        try:
            if extension == ".whl":
                file_name, file_version, *_ = parse_wheel_filename(filename)
            else:
                file_name, file_version = parse_sdist_filename(filename)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
            raise UploadError(400, f"Invalid distribution file name: {exc}") from None
        if canonicalize_name(file_name) != canonicalize_name(self.name):
            prefix = self.name.replace("-", "_") if extension == ".whl" else self.name
            raise UploadError(400, f"Start filename for {self.name!r} with {prefix!r}.")
        if file_version != self.version:
            raise UploadError(400, f"Version in filename should be {str(self.version)!r} not "
                                   f"{str(file_version)!r}.")

    def _check_size(self) -> None:
        limit = getattr(settings, "INDEX_MAX_FILE_SIZE", 100 * 1024 * 1024)
        if self.content.size > limit:
            raise UploadError(400, f"File too large. Limit for project {self.name!r} is "
                                   f"{limit // (1024 * 1024)} MB.")

    def _check_digests(self, post) -> None:  # type: ignore[no-untyped-def]
        md5, sha256, blake2 = hashlib.md5(usedforsecurity=False), hashlib.sha256(), \
            hashlib.blake2b(digest_size=32)
        self.content.seek(0)
        for chunk in self.content.chunks():
            md5.update(chunk)
            sha256.update(chunk)
            blake2.update(chunk)
        self.content.seek(0)
        self.sha256, self.blake2_256 = sha256.hexdigest(), blake2.hexdigest()
        supplied = {
            "md5_digest": (post.get("md5_digest", "").strip().lower(), md5.hexdigest(), _HEX32),
            "sha256_digest": (post.get("sha256_digest", "").strip().lower(), self.sha256, _HEX64),
            "blake2_256_digest": (post.get("blake2_256_digest", "").strip().lower(),
                                  self.blake2_256, _HEX64),
        }
        if not any(value for value, _, _ in supplied.values()):
            raise UploadError(400, "Include at least one message digest.")
        for field, (value, actual, shape) in supplied.items():
            if value and (not shape.match(value) or value != actual):
                raise UploadError(400, "The digest supplied does not match a digest calculated "
                                       f"from the uploaded file ({field}).")

    def _check_metadata(self) -> None:
        """The file's own metadata must name the project and version of the form."""
        try:
            metadata = read_metadata(self.content, self.filename)
        except InvalidDistribution as exc:
            raise UploadError(400, exc.reason) from None
        if normalize_project_name(metadata.name) != self.normalized_name:
            raise UploadError(400, f"Invalid distribution file. The metadata of {self.filename!r} "
                                   f"names the project {metadata.name!r}, not {self.name!r}.")
        if metadata.version != self.version:
            raise UploadError(400, f"Invalid distribution file. The metadata of {self.filename!r} "
                                   f"gives the version {str(metadata.version)!r}, not "
                                   f"{str(self.version)!r}.")

    @staticmethod
    def _attestations(raw: str | None) -> list | None:
        # uv/twine send PEP 740 attestations as a JSON array. This index keeps them verbatim (a
        # real index would verify them against the publisher's identity before accepting).
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise UploadError(400, "Invalid attestations supplied during upload: not JSON.") \
                from None
        if not isinstance(value, list):
            raise UploadError(400, "Invalid attestations supplied during upload: expected a "
                                   "JSON array.")
        if _contains_nul(value):
            # "\u0000" escapes decode to NUL, which PostgreSQL's jsonb refuses.
            raise UploadError(400, "Invalid attestations supplied during upload: Null bytes are "
                                   "not allowed.")
        return value


def _contains_nul(value: object) -> bool:
    """True if any string (key or value) in a decoded JSON document contains NUL."""
    pending = [value]
    while pending:  # iterative: depth is whatever the client sent
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return False


def _authorise(request: HttpRequest, uploader: Uploader, upload: _Upload) -> Project | None:
    """Check the uploader may upload; return the project (None: a user creates a new one)."""
    project = Project.objects.filter(normalized_name=upload.normalized_name).first()
    if uploader.principal is not None:
        # The app's one call: the token's projects, revocation, expiry, the publisher, that the
        # project exists (a CI identity never creates one), the host veto (archived), the file
        # name, single use and the audit trail. Runs inside our transaction.
        refusal = check_trusted_upload(
            request, upload.name, upload.filename, principal=uploader.principal
        )
        if refusal is not None:
            raise UploadError(403, refusal.content.decode().rstrip("\n"))
        return project
    user = uploader.user
    if project is None:
        return None
    if project.archived:
        raise UploadError(403, f"Project {project.name!r} is archived and accepts no uploads.")
    if not (user.is_staff or project.maintainers.filter(pk=user.pk).exists()):
        raise UploadError(403, f"The user {user.get_username()!r} isn't allowed to upload to "
                               f"project {project.name!r}.")
    return project


def _store(request: HttpRequest, uploader: Uploader, upload: _Upload) -> File:
    denied: UploadError | None = None
    with transaction.atomic():
        try:
            project = _authorise(request, uploader, upload)
        except UploadError as exc:
            # Nothing is written yet except the app's upload.denied audit event: leave the
            # block normally so that event is committed, then refuse.
            denied = exc
        else:
            # Authorising consumed a single-use token: if storing fails, the whole transaction
            # (consumption included) rolls back and the token can be used again.
            return _write(uploader, upload, project)
    assert denied is not None
    raise denied


def _write(uploader: Uploader, upload: _Upload, project: Project | None) -> File:
    # Compared normalised: "Kit-2.0.tar.gz", "kit-2.0.tar.gz" and "kit-2.tar.gz" are one file.
    existing = File.objects.filter(normalized_filename=upload.normalized_filename).first()
    if existing is not None:
        if existing.filename == upload.filename and existing.sha256 == upload.sha256:
            # PyPI: the very same file again (a re-run release job) is accepted, not stored twice.
            return existing
        raise UploadError(400, f"File already exists ({existing.filename!r}). {FILE_REUSE_HELP}")
    if project is None:
        project = Project.objects.create(name=upload.name, created_by=uploader.label[:200])
        project.maintainers.add(uploader.user)
    release = _release(project, upload.version)
    if (upload.filetype == File.PackageType.SDIST
            and release.files.filter(packagetype=File.PackageType.SDIST).exists()):
        raise UploadError(400, "Only one sdist may be uploaded per release.")
    principal = uploader.principal
    record = File(
        release=release,
        filename=upload.filename,
        normalized_filename=upload.normalized_filename,
        sha256=upload.sha256,
        blake2_256=upload.blake2_256,
        size=upload.content.size,
        packagetype=upload.filetype,
        python_version=upload.pyversion,
        requires_python=upload.requires_python,
        uploaded_by=uploader.label[:300],
        uploaded_via_trusted_publisher=principal is not None,
        publisher_label=str(principal.publisher)[:400] if principal is not None else "",
        attestations=upload.attestations,
    )
    record.content.save(upload.filename, upload.content, save=False)
    try:
        record.save()
    except BaseException:
        record.content.delete(save=False)  # don't leave an orphan on disk
        raise
    return record


def _release(project: Project, version: Version) -> Release:
    """The project's release for ``version``, matched as PEP 440 versions ("2" is "2.0")."""
    for pk, known in Release.objects.filter(project=project).values_list("pk", "version"):
        try:
            if Version(known) == version:
                return Release.objects.get(pk=pk)
        except InvalidVersion:
            continue
    release, _ = Release.objects.get_or_create(project=project, version=str(version))
    return release


@csrf_exempt
@require_POST
@accepts_upload_tokens  # the one view of this index where a minted token is a credential
def upload(request: HttpRequest) -> HttpResponse:
    try:
        uploader = authenticate_uploader(request)
    except Throttled as exc:
        return _reply(429, exc.reason, retry_after=exc.retry_after)
    except NotAuthenticated as exc:
        return _reply(401, exc.reason)
    try:
        parsed = _Upload(request)
        record = _store(request, uploader, parsed)
    except UploadError as exc:
        return _reply(exc.status, exc.reason)
    except IntegrityError:
        # Lost a race with a concurrent upload of the same file.
        return _reply(400, f"File already exists. {FILE_REUSE_HELP}")
    logger.info("uploaded %s by %s", record.filename, uploader.label)
    return HttpResponse("OK\n", content_type="text/plain; charset=utf-8")
