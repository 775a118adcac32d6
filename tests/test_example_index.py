"""In-process tests of the example index (example_project.index) with Django's test client."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zipfile
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from example_project.index.integration import IndexIntegration
from example_project.index.models import File, Project
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import GitHubPublisher, TrustedIssuer

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
INTEGRATION = "example_project.index.integration.IndexIntegration"


@pytest.fixture(autouse=True)
def _index(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with override_tp_settings(HOST_INTEGRATION=INTEGRATION):
        yield


@pytest.fixture
def staff(db: Any) -> Any:
    return get_user_model().objects.create_user("release-admin", password="s3cret", is_staff=True)


@pytest.fixture
def alice(db: Any) -> Any:
    return get_user_model().objects.create_user("alice", password="alice-pw")


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def metadata(name: str, version: str, *, requires_python: str = ">=3.9") -> bytes:
    return (
        f"Metadata-Version: 2.3\nName: {name}\nVersion: {version}\n"
        f"Requires-Python: {requires_python}\n\nA test distribution.\n"
    ).encode()


def wheel_bytes(
    filename: str, *, meta: bytes | None = None, extra: dict[str, bytes] | None = None
) -> bytes:
    """A small wheel in memory; METADATA says the file name's name and version unless given."""
    name, version = filename[: -len(".whl")].split("-")[:2]
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name.lower()}/__init__.py": b"",
        f"{dist_info}/METADATA": meta if meta is not None else metadata(name, version),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/RECORD": b"",
        **(extra or {}),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()


def sdist_bytes(
    filename: str, *, meta: bytes | None = None, extra: dict[str, bytes] | None = None
) -> bytes:
    """A small .tar.gz (or .zip) sdist in memory with ``<name>-<version>/PKG-INFO``."""
    top = filename.removesuffix(".tar.gz").removesuffix(".zip")
    name, _, version = top.rpartition("-")
    files = {
        f"{top}/PKG-INFO": meta if meta is not None else metadata(name, version),
        f"{top}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode(),
        **(extra or {}),
    }
    buffer = io.BytesIO()
    if filename.endswith(".zip"):
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, data in files.items():
                archive.writestr(path, data)
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def dist_bytes(filename: str, **kwargs: Any) -> bytes:
    """A valid distribution for ``filename`` (anything else: opaque bytes)."""
    if filename.endswith(".whl"):
        return wheel_bytes(filename, **kwargs)
    if filename.endswith((".tar.gz", ".zip")):
        return sdist_bytes(filename, **kwargs)
    return f"payload of {filename}".encode()


def upload(
    client: Any,
    filename: str,
    *,
    name: str,
    version: str,
    auth: str | None,
    content: bytes | None = None,
    environ: dict[str, str] | None = None,
    **fields: Any,
) -> Any:
    content = content if content is not None else dist_bytes(filename)
    filetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
    data = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.3",
        "name": name,
        "version": version,
        "filetype": filetype,
        "pyversion": "py3" if filetype == "bdist_wheel" else "source",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(content, digest_size=32).hexdigest(),
        "requires_python": ">=3.9",
        "content": SimpleUploadedFile(filename, content),
    }
    data.update(fields)
    data = {key: value for key, value in data.items() if value is not None}
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post("/legacy/", data=data, **headers, **(environ or {}))


# --- uploads with user credentials ---------------------------------------------------------


def test_staff_upload_is_stored_and_listed(client: Any, staff: Any) -> None:
    body = wheel_bytes("Hello_World-1.0-py3-none-any.whl")
    response = upload(
        client,
        "Hello_World-1.0-py3-none-any.whl",
        name="Hello_World",
        version="1.0",
        auth=basic("release-admin", "s3cret"),
        content=body,
    )
    assert response.status_code == 200, response.content
    file = File.objects.get(filename="Hello_World-1.0-py3-none-any.whl")
    assert file.release.project.normalized_name == "hello-world"
    assert file.sha256 == hashlib.sha256(body).hexdigest()
    assert file.uploaded_by == "release-admin"
    assert not file.uploaded_via_trusted_publisher
    download = client.get(file.get_absolute_url())
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == body


def test_digest_mismatch_is_rejected(client: Any, staff: Any) -> None:
    response = upload(
        client,
        "demo-1.0.tar.gz",
        name="demo",
        version="1.0",
        auth=basic("release-admin", "s3cret"),
        sha256_digest="0" * 64,
    )
    assert response.status_code == 400
    assert "digest supplied does not match" in response.reason_phrase
    assert "digest supplied does not match" in response.content.decode()
    assert not File.objects.exists()


def test_upload_without_any_digest_is_rejected(client: Any, staff: Any) -> None:
    response = upload(
        client,
        "demo-1.0.tar.gz",
        name="demo",
        version="1.0",
        auth=basic("release-admin", "s3cret"),
        sha256_digest=None,
        blake2_256_digest=None,
    )
    assert response.status_code == 400
    assert response.reason_phrase == "Include at least one message digest."


def test_md5_only_digest_is_checked(client: Any, staff: Any) -> None:
    content = sdist_bytes("demo-1.0.tar.gz")
    good = upload(
        client,
        "demo-1.0.tar.gz",
        name="demo",
        version="1.0",
        content=content,
        auth=basic("release-admin", "s3cret"),
        sha256_digest=None,
        blake2_256_digest=None,
        md5_digest=hashlib.md5(content).hexdigest(),
    )
    assert good.status_code == 200
    bad = upload(
        client,
        "demo-1.1.tar.gz",
        name="demo",
        version="1.1",
        auth=basic("release-admin", "s3cret"),
        sha256_digest=None,
        blake2_256_digest=None,
        md5_digest="a" * 32,
    )
    assert bad.status_code == 400


def test_duplicate_file_is_rejected_like_pypi(client: Any, staff: Any) -> None:
    auth = basic("release-admin", "s3cret")
    assert (
        upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=auth).status_code == 200
    )
    # The very same file again (a re-run release job): accepted like PyPI, stored once.
    same = upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=auth)
    assert same.status_code == 200
    assert File.objects.count() == 1
    different = sdist_bytes("demo-1.0.tar.gz", extra={"demo-1.0/README": b"changed"})
    again = upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=auth,
                   content=different)
    # twine --skip-existing and uv --check-url look for exactly this.
    assert again.status_code == 400
    assert again.reason_phrase.startswith("File already exists")
    assert File.objects.get().sha256 != hashlib.sha256(different).hexdigest()


@pytest.mark.parametrize(
    ("filename", "name", "version", "message"),
    [
        ("other-1.0.tar.gz", "demo", "1.0", "Start filename for 'demo' with 'demo'."),
        ("demo-2.0-py3-none-any.whl", "demo", "1.0", "Version in filename should be '1.0'"),
        ("demo-1.0.exe", "demo", "1.0", "Invalid file extension"),
        ("demo-1.0.tar.gz", "-demo-", "1.0", "is an invalid value for Name"),
        ("demo-1.0.tar.gz", "demo", "not a version", "is an invalid value for Version"),
    ],
)
def test_invalid_uploads_are_rejected(
    client: Any, staff: Any, filename: str, name: str, version: str, message: str
) -> None:
    response = upload(
        client, filename, name=name, version=version, auth=basic("release-admin", "s3cret")
    )
    assert response.status_code == 400
    assert message in response.reason_phrase
    assert not File.objects.exists()
    assert not Project.objects.exists()


def test_filetype_must_match_extension(client: Any, staff: Any) -> None:
    response = upload(
        client,
        "demo-1.0.tar.gz",
        name="demo",
        version="1.0",
        auth=basic("release-admin", "s3cret"),
        filetype="bdist_wheel",
    )
    assert response.status_code == 400
    assert "does not match the file extension" in response.reason_phrase


def test_attestations_are_kept(client: Any, staff: Any) -> None:
    attestations = [{"version": 1, "envelope": {"statement": "e30=", "signature": "c2ln"}}]
    response = upload(
        client,
        "demo-1.0.tar.gz",
        name="demo",
        version="1.0",
        auth=basic("release-admin", "s3cret"),
        attestations=json.dumps(attestations),
    )
    assert response.status_code == 200
    assert File.objects.get().attestations == attestations
    bad = upload(
        client,
        "demo-1.1.tar.gz",
        name="demo",
        version="1.1",
        auth=basic("release-admin", "s3cret"),
        attestations="{not json",
    )
    assert bad.status_code == 400


def test_wrong_password_and_missing_credentials_get_401(client: Any, staff: Any) -> None:
    wrong = upload(
        client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=basic("release-admin", "nope")
    )
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Basic realm="upload"'
    missing = upload(client, "demo-1.0.tar.gz", name="demo", version="1.0", auth=None)
    assert missing.status_code == 401
    foreign = upload(
        client,
        "demo-1.0.tar.gz",
        name="demo",
        version="1.0",
        auth=basic("__token__", "ghp_not-one-of-ours"),
    )
    assert foreign.status_code == 401
    assert not File.objects.exists()


def test_users_create_projects_and_maintain_only_their_own(
    client: Any, staff: Any, alice: Any
) -> None:
    alice_auth = basic("alice", "alice-pw")
    assert (
        upload(
            client, "alices-1.0.tar.gz", name="alices", version="1.0", auth=alice_auth
        ).status_code
        == 200
    )
    assert list(Project.objects.get(normalized_name="alices").maintainers.all()) == [alice]
    # Another user's project: forbidden for alice, allowed for staff.
    Project.objects.create(name="shared", created_by="release-admin")
    denied = upload(client, "shared-1.0.tar.gz", name="shared", version="1.0", auth=alice_auth)
    assert denied.status_code == 403
    assert "isn't allowed to upload to project 'shared'" in denied.reason_phrase
    assert (
        upload(
            client,
            "shared-1.0.tar.gz",
            name="shared",
            version="1.0",
            auth=basic("release-admin", "s3cret"),
        ).status_code
        == 200
    )


def test_archived_project_accepts_nothing(client: Any, staff: Any) -> None:
    Project.objects.create(name="old", archived=True)
    response = upload(
        client, "old-1.0.tar.gz", name="old", version="1.0", auth=basic("release-admin", "s3cret")
    )
    assert response.status_code == 403
    assert "archived" in response.reason_phrase


# --- Simple Repository API -------------------------------------------------------------------


@pytest.fixture
def published(client: Any, staff: Any) -> bytes:
    body = wheel_bytes("Foo_Bar-1.0-py3-none-any.whl")
    assert (
        upload(
            client,
            "Foo_Bar-1.0-py3-none-any.whl",
            name="Foo_Bar",
            version="1.0",
            auth=basic("release-admin", "s3cret"),
            content=body,
        ).status_code
        == 200
    )
    return body


def test_simple_html_by_default(client: Any, published: bytes) -> None:
    response = client.get("/simple/foo-bar/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Accept" in response["Vary"]
    html = response.content.decode()
    sha = hashlib.sha256(published).hexdigest()
    assert f'href="/files/foo-bar/Foo_Bar-1.0-py3-none-any.whl#sha256={sha}"' in html
    assert 'data-requires-python="&gt;=3.9"' in html
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    index = client.get("/simple/")
    assert '<a href="/simple/foo-bar/">Foo_Bar</a>' in index.content.decode()


def test_simple_page_under_the_upload_url_for_hatch(client: Any, published: bytes) -> None:
    # hatch publish reads <upload URL>/+simple/<project>/ to skip files already uploaded.
    response = client.get("/legacy/+simple/foo-bar/")
    assert response.status_code == 200
    assert response.content == client.get("/simple/foo-bar/").content
    assert client.get("/legacy/+simple/no-such-project/").status_code == 404


def test_simple_json_for_pip_accept_header(client: Any, published: bytes) -> None:
    response = client.get("/simple/foo-bar/", HTTP_ACCEPT=PIP_ACCEPT)
    assert response["Content-Type"] == "application/vnd.pypi.simple.v1+json"
    data = response.json()
    assert data["meta"]["api-version"] == "1.1"
    assert data["name"] == "foo-bar"
    assert data["versions"] == ["1.0"]
    [file] = data["files"]
    assert file["hashes"]["sha256"] == hashlib.sha256(published).hexdigest()
    assert file["requires-python"] == ">=3.9"
    assert file["size"] == len(published)
    assert client.get(file["url"]).status_code == 200
    root = client.get("/simple/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json").json()
    assert root["projects"] == [{"name": "Foo_Bar"}]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        ("application/vnd.pypi.simple.latest+json", "application/vnd.pypi.simple.v1+json"),
        ("text/html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.5", "text/html"),
        ("*/*", "text/html"),
    ],
)
def test_simple_negotiation(client: Any, published: bytes, accept: str, expected: str) -> None:
    response = client.get("/simple/foo-bar/", HTTP_ACCEPT=accept)
    assert response["Content-Type"].split(";")[0] == expected


def test_simple_unacceptable_and_format_parameter(client: Any, published: bytes) -> None:
    assert client.get("/simple/foo-bar/", HTTP_ACCEPT="application/xml").status_code == 406
    response = client.get(
        "/simple/foo-bar/?format=application/vnd.pypi.simple.v1%2Bjson", HTTP_ACCEPT="text/html"
    )
    assert response["Content-Type"] == "application/vnd.pypi.simple.v1+json"


def test_non_normalised_names_redirect(client: Any, published: bytes) -> None:
    response = client.get("/simple/Foo_Bar/")
    assert response.status_code == 301
    assert response["Location"] == "/simple/foo-bar/"
    assert client.get("/simple/unknown/").status_code == 404


# --- trusted publishers -----------------------------------------------------------------------


@pytest.fixture
def widgets_publisher(github_issuer: Any) -> GitHubPublisher:
    publisher = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=github_issuer.url),
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
    )
    publisher.add_projects(["widgets"])
    return publisher


def _minted(mint: Any, github_issuer: Any, **extra: Any) -> str:
    response = mint(github_issuer.sign(github_issuer.github_claims()), **extra)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def test_publisher_token_uploads_only_to_its_existing_projects(
    client: Any, mint: Any, github_issuer: Any, widgets_publisher: Any
) -> None:
    Project.objects.create(name="widgets")
    Project.objects.create(name="gadgets")
    auth = basic("__token__", _minted(mint, github_issuer))
    ok = upload(client, "widgets-1.0.tar.gz", name="widgets", version="1.0", auth=auth)
    assert ok.status_code == 200, ok.content
    file = File.objects.get(filename="widgets-1.0.tar.gz")
    assert file.uploaded_via_trusted_publisher
    assert file.publisher_label == "GitHub acme/widgets release.yml"
    other = upload(client, "gadgets-1.0.tar.gz", name="gadgets", version="1.0", auth=auth)
    assert other.status_code == 403
    assert not File.objects.filter(filename="gadgets-1.0.tar.gz").exists()


def test_publisher_token_cannot_create_projects(
    client: Any, mint: Any, github_issuer: Any, widgets_publisher: Any
) -> None:
    # No token for a project the index does not have...
    refused = mint(github_issuer.sign(github_issuer.github_claims()))
    assert refused.status_code == 422
    assert "no longer exist on this index" in refused.json()["detail"]
    # ... and a token minted before the project was deleted cannot re-create it by uploading.
    project = Project.objects.create(name="widgets", created_by="release-admin")
    auth = basic("__token__", _minted(mint, github_issuer))
    project.delete()
    response = upload(client, "widgets-1.0.tar.gz", name="widgets", version="1.0", auth=auth)
    assert response.status_code == 403
    assert response.reason_phrase.startswith("Non-user identities cannot create new projects")
    assert not Project.objects.exists()


def test_pending_publisher_exchange_creates_the_project(
    client: Any, mint: Any, github_issuer: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    pending = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=github_issuer.url),
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
        pending_expires_at=timezone.now() + timedelta(days=1),
    )
    pending.add_projects(["brand-new"])
    auth = basic("__token__", _minted(mint, github_issuer))
    project = Project.objects.get(normalized_name="brand-new")
    assert "GitHub acme/widgets" in project.created_by
    response = upload(
        client, "brand_new-0.1-py3-none-any.whl", name="brand-new", version="0.1", auth=auth
    )
    assert response.status_code == 200, response.content


def test_single_use_token_uploads_once(
    client: Any, mint: Any, github_issuer: Any, widgets_publisher: Any
) -> None:
    Project.objects.create(name="widgets")
    auth = basic("__token__", _minted(mint, github_issuer, features=["single-use-token"]))
    assert (
        upload(client, "widgets-1.0.tar.gz", name="widgets", version="1.0", auth=auth).status_code
        == 200
    )
    second = upload(
        client, "widgets-1.0-py3-none-any.whl", name="widgets", version="1.0", auth=auth
    )
    assert second.status_code in (401, 403)
    assert File.objects.count() == 1


def test_integration_refuses_invalid_or_taken_names(db: Any, widgets_publisher: Any) -> None:
    integration = IndexIntegration()
    with pytest.raises(ValueError, match="not a valid project name"):
        integration.create_project("-bad-", widgets_publisher)
    integration.create_project("fresh", widgets_publisher)
    assert integration.project_exists("Fresh")
    with pytest.raises(ValueError, match="already exists"):
        integration.create_project("fresh", widgets_publisher)
