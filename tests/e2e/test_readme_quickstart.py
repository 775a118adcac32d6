"""The README's quick start, verbatim, against a throwaway existing index, published to with uv.

README.md's section "Add it to an existing index in five minutes" is read at run time: its
```python blocks (settings, urls, upload view) are applied to a small pre-existing Django + DRF
index (tests/e2e/quickstart_host/: a Project model with name + normalized_name, Release/File
models, files on disk, a DRF ``/legacy/`` upload view with HTTP Basic for its users, a PEP 503
``/simple/`` index), and its ```bash block is run against it. The host then runs under gunicorn
over TLS on loopback and real ``uv publish --trusted-publishing always`` publishes to it as a
GitHub Actions job. A README edit that breaks the quick start breaks this test.

The issue's budget is checked too: adopting the app takes at most 20 changed lines of host code
(settings and URLs excluded), counted on this host project.

The host always uses a SQLite file in tmp_path (also in the PostgreSQL CI run): it is a separate
throwaway project, not the example index.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.support.dists import make_dists
from tests.support.environment import clean_env, github_actions_env
from tests.support.idp import FakeIdP
from tests.support.server import REPO_ROOT, TLSFiles, free_port
from trusted_publishing.testing import TestIssuer

from .conftest import run, tool

pytestmark = pytest.mark.e2e

README = REPO_ROOT / "README.md"
SECTION = "## Add it to an existing index in five minutes"
TEMPLATES = Path(__file__).parent / "quickstart_host"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
MAX_CHANGED_LINES = 20
VIEWS = "myindex/views.py"


# --- the README ---------------------------------------------------------------------------------
def readme_blocks() -> dict[str, str]:
    """The fenced code blocks of the quick-start section, by role: settings, urls, view, bash."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", section, flags=re.M | re.S)
    python = [body for lang, body in blocks if lang == "python"]
    bash = [body for lang, body in blocks if lang == "bash"]
    assert len(python) == 3 and len(bash) == 1, f"unexpected blocks in the section: {blocks}"
    roles: dict[str, str] = {"bash": bash[0]}
    for body in python:
        if "INSTALLED_APPS" in body:
            roles["settings"] = body
        elif "urlpatterns" in body:
            roles["urls"] = body
        elif "check_trusted_upload" in body:
            roles["view"] = body
    assert set(roles) == {"settings", "urls", "view", "bash"}, roles
    return roles


def bash_commands(block: str) -> list[list[str]]:
    """The bash block's commands: continuations joined, comments dropped, split like a shell."""
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            commands.append(argv)
    return commands


# --- applying the snippets to the host ----------------------------------------------------------
def apply_settings(settings: str, snippet: str, cache_dir: Path) -> str:
    return (
        settings
        + "\n# --- README quick start, verbatim ---\n"
        + snippet
        + "\n# --- test-only overrides (not part of the quick start) ---\n"
        # The README's Redis cache is replaced ONLY here, after its block: the test has no Redis.
        # A file-based cache is shared by every process of the host (gunicorn workers and the
        # manage.py commands), which is what the README's comment asks of the cache.
        + "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.filebased.FileBasedCache',"
        + f" 'LOCATION': {str(cache_dir)!r}}}}}\n"
        # The app's class in DEFAULT_AUTHENTICATION_CLASSES, so that the test can show a minted
        # token is still refused by the host's other DRF views (README: "even with the class in
        # DEFAULT_AUTHENTICATION_CLASSES").
        + "REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'] = [\n"
        + "    'trusted_publishing.authentication.UploadTokenAuthentication',\n"
        + "    *REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'],\n"
        + "]\n"
    )


def apply_urls(urls: str, snippet: str) -> str:
    """``urlpatterns = [path("", include("trusted_publishing.urls")), ...]``: the ``...`` is the
    host's existing patterns."""
    [line] = [ln for ln in snippet.splitlines() if ln.strip()]
    head, sep, tail = line.partition("...")
    assert sep, f"no `...` placeholder in the README's urls line: {line!r}"
    match = re.search(r"^urlpatterns = \[\n(.*?)^\]\n", urls, flags=re.M | re.S)
    assert match, "the host's urls.py has no `urlpatterns = [...]` list"
    replacement = f"{head.rstrip()}\n{match.group(1)}{tail.strip()}\n"
    return urls[: match.start()] + replacement + urls[match.end() :]


def apply_view(view: str, snippet: str) -> str:
    """Insert the README's upload-view lines into the host's view; the README's ``...`` lines
    stand for the host's existing code, its other lines must match the host's line for line."""
    snippet_lines = [ln for ln in snippet.splitlines() if ln.strip()]
    imports = [ln for ln in snippet_lines if ln.startswith(("from ", "import "))]
    body = [ln for ln in snippet_lines if ln not in imports]
    host = view.splitlines()

    # 1. imports: after the host's last absolute top-level import (its own `from .` ones last).
    last_import = max(i for i, ln in enumerate(host) if re.match(r"(from|import) [^.]", ln))
    host[last_import + 1 : last_import + 1] = imports

    # 2. the rest: walk the README's lines over the host's, anchored on identical lines.
    def code(line: str) -> str:
        return line.split("#", 1)[0].rstrip()

    def is_placeholder(line: str) -> bool:
        return code(line).strip() == "..."

    cursor = 0
    pending: list[str] = []  # README lines that are new to the host, inserted at the next anchor
    for line in body:
        if is_placeholder(line):
            # Host code runs here: the new lines so far go right after the previous anchor.
            host[cursor:cursor] = pending
            cursor += len(pending)
            pending = []
            continue
        attribute = re.match(r" {4}(\w+) = ", line)  # a class attribute of the view
        same = [i for i in range(cursor, len(host)) if code(host[i]) == code(line)]
        if same:  # an anchor: a line the host already has (class, def, with)
            host[same[0] : same[0]] = pending
            cursor = same[0] + len(pending) + 1
            pending = []
        elif attribute and (
            hits := [
                i
                for i in range(cursor, len(host))
                if host[i].startswith(f"    {attribute.group(1)} = ")
            ]
        ):  # a class attribute the host sets already: the README's value replaces it
            host[hits[0]] = line
            cursor = hits[0] + 1
        else:
            pending.append(line)
    assert not pending, f"README lines with no place in the host's view: {pending}"
    return "\n".join(host) + "\n"


def changed_lines(before: str, after: str) -> int:
    """Added + changed lines (a replaced line counts once, as do removed lines)."""
    count = 0
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            count += max(i2 - i1, j2 - j1)
    return count


def host_code(root: Path) -> dict[str, str]:
    """The host's own .py files, settings and URLs excluded (the issue's budget)."""
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*.py"))
        if p.name not in {"settings.py"} and not p.name.endswith("urls.py")
    }


# --- the running host ---------------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


class Host:
    def __init__(self, root: Path, env: dict[str, str], tls: TLSFiles) -> None:
        self.root, self.env, self.tls = root, env, tls
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=tls.client_context()),
        )

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def manage(self, *argv: str) -> str:
        result = run([sys.executable, "manage.py", *argv], env=self.env, cwd=self.root)
        assert result.returncode == 0, result.output
        return result.stdout

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "hostsite.wsgi:application"),
                *("--bind", f"127.0.0.1:{self.port}", "--workers", "2"),
                *("--threads", "4", "--worker-class", "gthread", "--timeout", "60"),
                *("--graceful-timeout", "3", "--no-control-socket"),
                *("--error-logfile", str(self.root / "gunicorn.log"), "--capture-output"),
                *("--certfile", str(self.tls.cert), "--keyfile", str(self.tls.key)),
            ],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                if self.get("/simple/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"the host did not come up:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def log(self) -> str:
        path = self.root / "gunicorn.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def request(
        self,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return self.request(path, headers=headers)

    def simple_files(self, project: str) -> dict[str, tuple[str, str]]:
        """``filename -> (url path, sha256 fragment)`` from the host's PEP 503 page."""
        status, body = self.get(f"/simple/{project}/")
        assert status == 200, body
        parser = _Links()
        parser.feed(body.decode())
        files = {}
        for href in parser.hrefs:
            url, _, fragment = href.partition("#sha256=")
            files[url.rsplit("/", 1)[-1]] = (url, fragment)
        return files


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


# --- the test -----------------------------------------------------------------------------------
def build_host(root: Path) -> None:
    for template in TEMPLATES.rglob("*.tmpl"):
        target = root / template.relative_to(TEMPLATES).with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)


def test_readme_quickstart_on_an_existing_index(tmp_path: Path) -> None:
    started = time.monotonic()
    blocks = readme_blocks()
    root = tmp_path / "host"
    build_host(root)
    env = clean_env(
        tmp_path / "home",
        {
            "DJANGO_SETTINGS_MODULE": "hostsite.settings",
            # the host first; then whatever this interpreter was given (same Django as the test)
            "PYTHONPATH": os.pathsep.join(
                p for p in [str(root), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p
            ),
            "SECRET_KEY": "quickstart-" + uuid.uuid4().hex,
            "HOST_DATABASE": str(tmp_path / "host.sqlite3"),
            "HOST_PACKAGE_DIR": str(tmp_path / "packages"),
            "PYTHONUNBUFFERED": "1",
        },
    )
    tls = TLSFiles.create(tmp_path / "tls")
    host = Host(root, env, tls)

    # The existing index, before: its own migrations, made with the venv's Django.
    host.manage("makemigrations", "myindex", "-v", "0")
    before = host_code(root)

    # Apply the README's three snippets.
    settings = root / "hostsite/settings.py"
    settings.write_text(
        apply_settings(settings.read_text(), blocks["settings"], tmp_path / "cache")
    )
    urls = root / "hostsite/urls.py"
    urls.write_text(apply_urls(urls.read_text(), blocks["urls"]))
    view = root / VIEWS
    view.write_text(apply_view(view.read_text(), blocks["view"]))
    after = host_code(root)

    assert set(before) == set(after)
    counts = {name: changed_lines(before[name], after[name]) for name in before}
    total = sum(counts.values())
    print(f"\nchanged lines of host code (settings and URLs excluded): {total} {counts}")
    print(
        "".join(
            difflib.unified_diff(
                before[VIEWS].splitlines(keepends=True),
                after[VIEWS].splitlines(keepends=True),
                f"before/{VIEWS}",
                f"after/{VIEWS}",
            )
        )
    )
    assert total <= MAX_CHANGED_LINES, counts

    # The README's bash block, verbatim (`python` is the test's interpreter). The project must
    # exist first: the existing index has it, created through its own model.
    commands = bash_commands(blocks["bash"])
    assert [c[:3] for c in commands] == [
        ["python", "manage.py", "migrate"],
        ["python", "manage.py", "trusted_publishing"],
    ], commands
    host.manage(*commands[0][2:])
    host.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; from myindex.models import Project; "
        "Project.objects.create(name='widgets'); "
        "User.objects.create_user('alice', password='alice-password')",
    )
    # GitHub's issuer (seeded by migrate) with pinned keys: a local TestIssuer signs for
    # https://token.actions.githubusercontent.com, so the README's add-publisher line (default
    # issuer: GitHub's) is run unchanged and nothing leaves loopback.
    with FakeIdP(
        request_token="gh-" + uuid.uuid4().hex[:8],
        issuer_factory=lambda _url: TestIssuer(GITHUB_ISSUER),
    ) as idp:
        jwks = tmp_path / "github-jwks.json"
        jwks.write_text(json.dumps(idp.issuer.jwks()))
        host.manage(
            *("trusted_publishing", "add-issuer", "--provider", "github"),
            *("--url", GITHUB_ISSUER, "--jwks-file", str(jwks)),
        )
        print(host.manage(*commands[1][2:]))

        host.start()
        try:
            _publish_and_check(host, idp, tmp_path)
        except BaseException:
            print(host.log())
            raise
        finally:
            host.stop()
    print(f"quick-start test took {time.monotonic() - started:.1f}s")


def _publish_and_check(host: Host, idp: FakeIdP, tmp_path: Path) -> None:
    # The job the publisher names: acme/widgets, release.yml, environment pypi.
    idp.job("acme/widgets", "release.yml", environment="pypi")
    dists = make_dists("widgets", "1.0.0", tmp_path / "dist")
    client_env = clean_env(tmp_path / "home")
    gha_env = {
        **client_env,
        **github_actions_env(idp.token_url, idp.request_token),
        "SSL_CERT_FILE": str(host.tls.ca),
    }
    result = run(
        [
            *(tool("uv"), "publish", "--trusted-publishing", "always"),
            *("--publish-url", f"{host.base_url}/legacy/"),
            *(str(d.path) for d in dists),
        ],
        env=gha_env,
    )
    assert result.returncode == 0, result.output
    audience = idp.last_audience
    assert audience == "pkgs.example.internal", audience  # the README's AUDIENCE

    served = host.simple_files("widgets")
    for dist in dists:
        assert dist.filename in served, f"{dist.filename} missing from {sorted(served)}"
        url, sha256 = served[dist.filename]
        assert sha256 == dist.sha256
        status, body = host.get(url)
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == dist.sha256

    # A token minted for the repository is an upload-only credential: the host's other DRF
    # views refuse it, even with the app's class in DEFAULT_AUTHENTICATION_CLASSES...
    status, body = host.request(
        "/_/oidc/mint-token",
        data=json.dumps({"token": idp.token_for(audience)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body
    token = json.loads(body)["token"]
    status, body = host.get("/api/whoami", headers=basic("__token__", token))
    assert status == 401, body
    assert "upload" in json.loads(body)["detail"].lower(), body
    # ... while the host's users still log in there, and on /legacy/, as before.
    status, body = host.get("/api/whoami", headers=basic("alice", "alice-password"))
    assert (status, json.loads(body)) == (200, {"username": "alice"})
    # The same token is live: it uploads (the refusal above is not an invalid token's).
    more = make_dists("widgets", "1.0.1", tmp_path / "dist-1.0.1")
    result = run(
        [
            *(tool("uv"), "publish", "--publish-url", f"{host.base_url}/legacy/"),
            *(str(d.path) for d in more),
        ],
        # the token in the environment, never on a command line that an assertion prints
        env={
            **client_env,
            "SSL_CERT_FILE": str(host.tls.ca),
            "UV_PUBLISH_USERNAME": "__token__",
            "UV_PUBLISH_PASSWORD": token,
        },
    )
    assert result.returncode == 0, result.output
    assert {d.filename for d in [*dists, *more]} <= set(host.simple_files("widgets"))
    # A host user's upload still works (the app's class goes first, Basic stays).
    user_dists = make_dists("widgets", "1.0.2", tmp_path / "dist-1.0.2")
    result = run(
        [
            *(tool("uv"), "publish", "--username", "alice", "--password", "alice-password"),
            *("--publish-url", f"{host.base_url}/legacy/"),
            *(str(d.path) for d in user_dists),
        ],
        env={**client_env, "SSL_CERT_FILE": str(host.tls.ca)},
    )
    assert result.returncode == 0, result.output
    assert {d.filename for d in user_dists} <= set(host.simple_files("widgets"))
