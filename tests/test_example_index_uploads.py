"""The example index's upload checks on hostile input: NUL bytes (PostgreSQL refuses them in
text and jsonb), files whose own metadata disagrees with the form, filename spellings that
hide duplicates, and archives built to hurt the server."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction

from example_project.index.models import File, Project, Release
from tests.test_example_index import (
    INTEGRATION,
    basic,
    dist_bytes,
    metadata,
    sdist_bytes,
    upload,
    wheel_bytes,
)
from tests.test_example_index import _minted as minted
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import GitHubPublisher, TrustedIssuer


@pytest.fixture(autouse=True)
def _index(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with override_tp_settings(HOST_INTEGRATION=INTEGRATION):
        yield


@pytest.fixture
def auth(db: Any) -> str:
    get_user_model().objects.create_user("release-admin", password="s3cret", is_staff=True)
    return basic("release-admin", "s3cret")


def refused(response: Any, message: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content)
    assert message in response.reason_phrase
    assert message in response.content.decode()
    assert response["Content-Type"].startswith("text/plain")


def nothing_stored() -> None:
    assert not File.objects.exists()
    assert not Release.objects.exists()


# --- item 13: NUL bytes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"pyversion": "py3\x00"},
        {"requires_python": ">=3.9\x00"},
        {"attestations": '[{"version": 1, "envelope": {"statement": "\\u0000"}}]'},
        {"attestations": '[{"\\u0000": 1}]'},
        {"attestations": '["a\x00"]'},  # a raw NUL (json.loads refuses control characters)
        {"metadata_version": "2.3\x00"},
    ],
    ids=["pyversion", "requires_python", "attestation-value", "attestation-key", "attestation-raw",
         "other-field"],
)
def test_nul_bytes_in_form_fields_are_refused(client: Any, auth: str, fields: dict) -> None:
    """PostgreSQL refuses NUL in text and jsonb: a 500 there, silently stored on SQLite."""
    response = upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=auth, **fields)
    assert response.status_code == 400, response.content
    assert "Null bytes are not allowed." in response.reason_phrase
    nothing_stored()
    assert not Project.objects.exists()


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x7f"])
def test_control_characters_in_the_filename_never_reach_the_database(
    client: Any, auth: str, char: str
) -> None:
    """Django's multipart parser drops some; the rest get PyPI's refusal."""
    response = upload(client, f"demo-1.0{char}.tar.gz", name="demo", version="1.0", auth=auth,
                      content=sdist_bytes("demo-1.0.tar.gz"))
    if response.status_code == 400:
        assert "non-printable characters" in response.reason_phrase
        nothing_stored()
    else:
        assert response.status_code == 200, response.content
        assert File.objects.get().filename == "demo-1.0.tar.gz"


def test_deeply_nested_attestations_are_a_400_not_a_500(client: Any, auth: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError
    response = upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=auth,
                      attestations=deep)
    refused(response, "Invalid attestations supplied during upload")
    nothing_stored()


def test_clean_fields_after_a_refusal_are_stored(client: Any, auth: str) -> None:
    assert upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=auth,
                  requires_python=">=3.9\x00").status_code == 400
    ok = upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=auth,
                attestations=json.dumps([{"version": 1}]))
    assert ok.status_code == 200, ok.content
    assert File.objects.get().requires_python == ">=3.9"


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "value"),
    [("SELECT %s::text", "py3\x00"), ("SELECT %s::jsonb", '["\\u0000"]')],
    ids=["text", "jsonb"],
)
def test_postgres_itself_refuses_nul(sql: str, value: str) -> None:
    """Why the checks above matter: PostgreSQL refuses these values (the 500 of the finding)."""
    assert connection.vendor == "postgresql"
    with pytest.raises(Exception) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [value])
    assert not isinstance(caught.value, IntegrityError)
    assert "0x00" in str(caught.value) or "u0000" in str(caught.value), caught.value


# --- item 14: the file's own metadata ---------------------------------------------------------
@pytest.mark.parametrize(
    ("filename", "meta", "message"),
    [
        ("kit-2.0-py3-none-any.whl", metadata("other", "2.0"),
         "names the project 'other', not 'kit'"),
        ("kit-2.0-py3-none-any.whl", metadata("kit", "3.0"),
         "gives the version '3.0', not '2.0'"),
        ("kit-2.0.tar.gz", metadata("other", "2.0"), "names the project 'other', not 'kit'"),
        ("kit-2.0.tar.gz", metadata("kit", "2.0.1"), "gives the version '2.0.1', not '2.0'"),
        ("kit-2.0.zip", metadata("other", "2.0"), "names the project 'other', not 'kit'"),
        ("kit-2.0-py3-none-any.whl", b"Metadata-Version: 2.3\nName: kit\n",
         "exactly one Name and one Version"),
        ("kit-2.0-py3-none-any.whl", b"Name: kit\nName: other\nVersion: 2.0\n",
         "exactly one Name and one Version"),
        ("kit-2.0-py3-none-any.whl", b"Name: kit\nVersion: two\n", "invalid Version 'two'"),
        ("kit-2.0-py3-none-any.whl", b"Name: kit\nVersion: 2.0\n\xff\xfe", "not valid UTF-8"),
    ],
    ids=["wheel-name", "wheel-version", "sdist-name", "sdist-version", "zip-sdist-name",
         "no-version", "two-names", "bad-version", "not-utf8"],
)
def test_metadata_in_the_file_must_match_the_form(
    client: Any, auth: str, filename: str, meta: bytes, message: str
) -> None:
    content = dist_bytes(filename, meta=meta)
    response = upload(client, filename, name="kit", version="2.0", auth=auth, content=content)
    refused(response, "Invalid distribution file.")
    assert message in response.reason_phrase
    nothing_stored()


def test_metadata_spelling_may_differ_from_the_form(client: Any, auth: str) -> None:
    """``Name: Kit`` in a ``kit`` upload is the same project (PEP 503), ``2.0.0`` is ``2.0``."""
    content = wheel_bytes("kit-2.0-py3-none-any.whl", meta=metadata("Kit", "2.0.0"))
    response = upload(client, "kit-2.0-py3-none-any.whl", name="kit", version="2.0", auth=auth,
                      content=content)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("kit-2.0-py3-none-any.whl", b"not a zip at all", "Invalid distribution file."),
        ("kit-2.0.tar.gz", b"not a tarball", "Invalid distribution file."),
        ("kit-2.0.tar.gz", gzip.compress(b"not a tar inside"), "Invalid distribution file."),
        ("kit-2.0.zip", b"PK\x05\x06" + b"\x00" * 18, "Invalid distribution file."),
        ("kit-2.0-py3-none-any.whl", sdist_bytes("kit-2.0.zip"),
         "Wheel 'kit-2.0-py3-none-any.whl' does not contain the required METADATA file: "
         "kit-2.0.dist-info/METADATA"),
        ("kit-2.0.tar.gz", sdist_bytes("other-2.0.tar.gz"),
         "Invalid distribution file. PKG-INFO not found at kit-2.0/PKG-INFO"),
        ("kit-2.0.zip", sdist_bytes("other-2.0.zip"),
         "Invalid distribution file. PKG-INFO not found at kit-2.0/PKG-INFO"),
    ],
    ids=["wheel-not-zip", "sdist-not-gzip", "sdist-not-tar", "empty-zip", "wheel-no-metadata",
         "sdist-no-pkg-info", "zip-sdist-no-pkg-info"],
)
def test_files_that_are_not_distributions_are_refused(
    client: Any, auth: str, filename: str, content: bytes, message: str
) -> None:
    response = upload(client, filename, name="kit", version="2.0", auth=auth, content=content)
    refused(response, message)
    nothing_stored()


def test_wheel_needs_its_wheel_file(client: Any, auth: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("kit-2.0.dist-info/METADATA", metadata("kit", "2.0"))
    response = upload(client, "kit-2.0-py3-none-any.whl", name="kit", version="2.0", auth=auth,
                      content=buffer.getvalue())
    refused(response, "Invalid distribution file. WHEEL not found at kit-2.0.dist-info/WHEEL")


def test_a_trusted_publisher_cannot_smuggle_another_project(
    client: Any, mint: Any, github_issuer: Any
) -> None:
    """The token covers ``kit``; the wheel inside says it is ``other``."""
    publisher = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=github_issuer.url), repository_owner="acme",
        repository_name="widgets", workflow_filename="release.yml",
    )
    publisher.add_projects(["kit"])
    Project.objects.create(name="kit")
    auth = basic("__token__", minted(mint, github_issuer))
    content = wheel_bytes("kit-2.0-py3-none-any.whl", meta=metadata("other", "2.0"))
    response = upload(client, "kit-2.0-py3-none-any.whl", name="kit", version="2.0", auth=auth,
                      content=content)
    refused(response, "names the project 'other', not 'kit'")
    nothing_stored()


# --- item 14: duplicates under another spelling -----------------------------------------------
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("kit-2.0.tar.gz", "Kit-2.0.tar.gz"),
        ("kit-2.0.tar.gz", "kit-2.tar.gz"),
        ("kit-2.0-py3-none-any.whl", "Kit-2.0-py3-none-any.whl"),
        ("kit-2.0-py3-none-any.whl", "kit-2.0.0-py3-none-any.whl"),
        ("foo_bar-1.0-py3-none-any.whl", "Foo.Bar-1.0-py3-none-any.whl"),
        ("foo_bar-1.0-py3-none-any.whl", "foo_bar-1.0-PY3-none-ANY.whl"),
    ],
)
def test_normalised_duplicates_are_caught(client: Any, auth: str, first: str, second: str) -> None:
    def send(filename: str) -> Any:
        name, version = filename.split("-")[:2]
        version = version.removesuffix(".tar.gz")
        return upload(client, filename, name=name, version=version, auth=auth)

    assert send(first).status_code == 200
    again = send(second)
    # twine --skip-existing and uv --check-url look for this start.
    refused(again, f"File already exists ({first!r}). See https://pypi.org/help/#file-name-reuse")
    assert list(File.objects.values_list("filename", flat=True)) == [first]
    assert Release.objects.count() == 1


def test_only_one_sdist_per_release(client: Any, auth: str) -> None:
    assert upload(client, "kit-2.0.tar.gz", name="kit", version="2.0", auth=auth).status_code \
        == 200
    response = upload(client, "kit-2.0.zip", name="kit", version="2.0", auth=auth)
    refused(response, "Only one sdist may be uploaded per release.")
    assert upload(client, "kit-2.0-py3-none-any.whl", name="kit", version="2.0",
                  auth=auth).status_code == 200
    assert File.objects.count() == 2


def test_version_spellings_share_one_release(client: Any, auth: str) -> None:
    assert upload(client, "kit-2.tar.gz", name="kit", version="2", auth=auth).status_code == 200
    assert upload(client, "kit-2.0-py3-none-any.whl", name="kit", version="2.0",
                  auth=auth).status_code == 200
    release = Release.objects.get()
    assert release.files.count() == 2


def test_normalised_filename_is_unique_in_the_database(db: Any) -> None:
    """Concurrent uploads of two spellings: the database, not only the check, keeps one."""
    release = Release.objects.create(project=Project.objects.create(name="kit"), version="2.0")
    fields = dict(release=release, sha256="0" * 64, blake2_256="0" * 64, size=1,
                  packagetype="sdist", uploaded_by="x")
    File.objects.create(filename="kit-2.0.tar.gz", normalized_filename="kit-2.0.tar.gz", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        File.objects.create(filename="Kit-2.0.tar.gz", normalized_filename="kit-2.0.tar.gz",
                            **fields)


# --- item 14: hostile archives ----------------------------------------------------------------
def test_oversized_metadata_is_not_read(client: Any, auth: str) -> None:
    """A highly compressible METADATA larger than the limit (a zip bomb in miniature)."""
    from example_project.index import distfile

    meta = metadata("kit", "2.0") + b"a" * (distfile.MAX_METADATA_BYTES + 1)
    content = wheel_bytes("kit-2.0-py3-none-any.whl", meta=meta)
    assert len(content) < 100_000
    response = upload(client, "kit-2.0-py3-none-any.whl", name="kit", version="2.0", auth=auth,
                      content=content)
    refused(response, "METADATA is larger than")


def test_sdist_gzip_bomb_is_cut_short(client: Any, auth: str, settings: Any) -> None:
    """An sdist that unpacks to far more than it weighs is read only up to a bound."""
    settings.INDEX_MAX_FILE_SIZE = 64 * 1024  # → at most 640 KiB unpacked
    zeros = b"\x00" * (2 * 1024 * 1024)
    content = sdist_bytes("kit-2.0.tar.gz", extra={"kit-2.0/aaa-padding": zeros})
    assert len(content) < settings.INDEX_MAX_FILE_SIZE
    response = upload(client, "kit-2.0.tar.gz", name="kit", version="2.0", auth=auth,
                      content=content)
    refused(response, "Invalid distribution file. File unpacks to more than")
    nothing_stored()


def test_too_many_members_are_refused(client: Any, auth: str, monkeypatch: Any) -> None:
    from example_project.index import distfile

    monkeypatch.setattr(distfile, "MAX_MEMBERS", 5)
    extra = {f"kit/m{i}.py": b"" for i in range(10)}
    for filename in ("kit-2.0-py3-none-any.whl", "kit-2.0.tar.gz"):
        content = dist_bytes(filename, extra=extra)
        response = upload(client, filename, name="kit", version="2.0", auth=auth,
                          content=content)
        refused(response, "File has more than 5 members")
    nothing_stored()


def test_zip_compression_ratio_limit(monkeypatch: Any) -> None:
    from example_project.index import distfile

    monkeypatch.setattr(distfile, "COMPRESSION_RATIO_MIN_SIZE", 1024)
    content = wheel_bytes("kit-2.0-py3-none-any.whl", extra={"kit/zeros": b"\x00" * 500_000})
    with pytest.raises(distfile.InvalidDistribution, match="compression ratio of 50"):
        distfile.read_metadata(io.BytesIO(content), "kit-2.0-py3-none-any.whl")


def test_unusual_zip_compression_is_refused(client: Any, auth: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("kit-2.0.dist-info/METADATA", metadata("kit", "2.0"))
        archive.writestr("kit-2.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
    response = upload(client, "kit-2.0-py3-none-any.whl", name="kit", version="2.0", auth=auth,
                      content=buffer.getvalue())
    refused(response, "File does not use a supported compression type")


def test_metadata_twice_or_not_a_regular_file_is_refused(client: Any, auth: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for meta in (metadata("kit", "2.0"), metadata("other", "2.0")):
            info = tarfile.TarInfo("kit-2.0/PKG-INFO")
            info.size = len(meta)
            archive.addfile(info, io.BytesIO(meta))
    response = upload(client, "kit-2.0.tar.gz", name="kit", version="2.0", auth=auth,
                      content=buffer.getvalue())
    refused(response, "kit-2.0/PKG-INFO appears more than once")

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("kit-2.0/PKG-INFO")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    response = upload(client, "kit-2.0.tar.gz", name="kit", version="2.0", auth=auth,
                      content=buffer.getvalue())
    refused(response, "kit-2.0/PKG-INFO is not a regular file")
    nothing_stored()


# --- real distributions are still accepted ----------------------------------------------------
def _send_file(client: Any, path: Path, name: str, version: str, auth: str) -> Any:
    filename = path.name
    return upload(client, filename, name=name, version=version, auth=auth,
                  content=path.read_bytes())


def test_hatchling_builds_are_accepted(client: Any, auth: str, tmp_path: Path) -> None:
    """What uv build / python -m build make (PEP 625 sdist, normalised wheel) goes through."""
    from tests.support.dists import build_project, write_project

    dists = build_project(write_project("Hello.Index", "0.1.0", tmp_path / "src"),
                          tmp_path / "dist")
    assert {d.filename for d in dists} == {"hello_index-0.1.0.tar.gz",
                                           "hello_index-0.1.0-py3-none-any.whl"}
    for dist in dists:
        response = _send_file(client, dist.path, "Hello.Index", "0.1.0", auth)
        assert response.status_code == 200, response.content
    assert File.objects.count() == 2


def test_synthetic_e2e_dists_are_accepted(client: Any, auth: str, tmp_path: Path) -> None:
    from tests.support.dists import make_dists

    for dist in make_dists("e2e-sample", "1.2.3", tmp_path):
        response = _send_file(client, dist.path, "e2e-sample", "1.2.3", auth)
        assert response.status_code == 200, response.content


def test_legacy_setuptools_spellings_are_accepted(client: Any, auth: str) -> None:
    """Old setuptools: ``Foo-Bar-1.0.tar.gz`` with ``Foo-Bar-1.0/PKG-INFO``."""
    response = upload(client, "Foo-Bar-1.0.tar.gz", name="Foo-Bar", version="1.0", auth=auth)
    assert response.status_code == 200, response.content
    assert File.objects.get().normalized_filename == "foo_bar-1.tar.gz"  # PEP 440: 1.0 is 1


MIGRATION_SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

call_command("migrate", "index", "0001", verbosity=0)
apps = MigrationExecutor(connection).loader.project_state([("index", "0001_initial")]).apps
project = apps.get_model("index", "Project").objects.create(name="Kit", normalized_name="kit")
release = apps.get_model("index", "Release").objects.create(project=project, version="2.0")
for filename in ("kit-2.0.tar.gz", "Kit-2.0.tar.gz", "Kit-2.0-py3-none-ANY.whl"):
    apps.get_model("index", "File").objects.create(
        release=release, filename=filename, sha256="0" * 64, blake2_256="0" * 64, size=1,
        packagetype="sdist", uploaded_by="x")
call_command("migrate", "index", "0002", verbosity=0)
from example_project.index.models import File
print(json.dumps([list(row) for row in File.objects.order_by("pk").values_list(
    "pk", "filename", "normalized_filename")]))
"""


def test_migration_fills_normalised_filenames_of_existing_files(tmp_path: Path) -> None:
    """0002 on a database that already has files, two of them the same under normalisation.

    Runs in a subprocess on a throwaway SQLite file: migrating the test database back and forth
    would need a transactional test, whose flush upsets later serialized-rollback tests.
    """
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'migrate.sqlite3'}"}
    result = subprocess.run([sys.executable, "-c", MIGRATION_SCRIPT], cwd=Path(__file__).parents[1],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    (first, _, _), (second, _, _), _ = rows
    assert [row[1:] for row in rows] == [
        ["kit-2.0.tar.gz", "kit-2.tar.gz"],
        ["Kit-2.0.tar.gz", f"kit-2.tar.gz#{second}"],
        ["Kit-2.0-py3-none-ANY.whl", "kit-2-py3-none-any.whl"],
    ]
    assert first < second
