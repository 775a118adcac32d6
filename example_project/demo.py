"""The demo driver behind ``bash scripts/demo.sh`` (``python -m example_project.demo``).

It runs every step a real setup has, on 127.0.0.1 and without any network:

1. a throwaway CA and a server certificate for 127.0.0.1 (trustme);
2. a fresh SQLite database (``manage.py migrate``) and an admin login;
3. the development identity provider (``trusted_publishing.contrib.devidp``, mounted at
   ``/_dev/idp/`` because the demo runs with DEBUG on) registered as a trusted issuer and a
   *pending* trusted publisher for the sample project
   (``manage.py trusted_publishing add-issuer/add-publisher``);
4. gunicorn serving the example index over TLS;
5. a sample package built offline (``python -m build --no-isolation``, hatchling);
6. ``uv publish --trusted-publishing always`` run exactly as in a GitHub Actions job;
7. ``pip install`` of the package back from the index's Simple API;

then prints the URLs to open and keeps serving until Ctrl-C. Any failing step stops the demo
with a non-zero exit status and says what went wrong.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROJECT = "hello-index"
VERSION = "0.1.0"
REPOSITORY = "acme/hello-index"
WORKFLOW = "release.yml"
ENVIRONMENT = "pypi"
#: variables of the surrounding machine that would change how the clients verify TLS or log in
_SCRUB_PREFIXES = ("UV_", "TWINE_", "PIP_", "GITHUB_", "ACTIONS_", "GITLAB_", "PDM_")
_SCRUB = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY",
          "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy",
          "DATABASE_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE"}


class StepFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"==> {text}", flush=True)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    def __init__(self, port: int, data_dir: Path, once: bool) -> None:
        self.port = port
        self.data = data_dir
        self.once = once
        self.base = f"https://127.0.0.1:{port}"
        self.issuer = f"{self.base}/_dev/idp"
        self.request_token = secrets.token_urlsafe(16)
        self.ca = self.data / "tls" / "ca.pem"
        self.server: subprocess.Popen[bytes] | None = None
        self.log = self.data / "server.log"

    # --- environments -----------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in _SCRUB and not k.startswith(_SCRUB_PREFIXES)}
        env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                    "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                    "UV_NO_CONFIG": "1", "PYTHON_KEYRING_BACKEND":
                    "keyring.backends.null.Keyring"})
        return env

    def server_env(self) -> dict[str, str]:
        env = self.base_env()
        env.update({
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "PYTHONPATH": str(ROOT),
            # trusted_publishing.contrib.devidp only exists in DEBUG (its URLconf refuses to
            # load otherwise).
            "DEBUG": "true",
            "INDEX_DATA_DIR": str(self.data),
            "DATABASE_URL": f"sqlite:///{self.data / 'index.sqlite3'}",
            # A cache all gunicorn workers share, without a cache server.
            "CACHE_URL": f"filecache://{self.data / 'cache'}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # The index fetches the dev issuer's keys from itself, over TLS with the demo CA.
            "TP_JWKS_CA_BUNDLE": str(self.ca),
            "DEVIDP_ISSUER": self.issuer,
            "DEVIDP_REQUEST_TOKEN": self.request_token,
            "DEVIDP_REPOSITORY": REPOSITORY,
            "DEVIDP_WORKFLOW": WORKFLOW,
            "DEVIDP_ENVIRONMENT": ENVIRONMENT,
            "DEVIDP_REF": f"refs/tags/v{VERSION}",
        })
        return env

    def run(self, args: Sequence[str], *, env: dict[str, str] | None = None,
            what: str, timeout: float = 300, show: bool = False,
            display: str | None = None) -> str:
        print(f"    $ {display or ' '.join(str(a) for a in args)}", flush=True)
        try:
            proc = subprocess.run([str(a) for a in args], cwd=ROOT, env=env or self.server_env(),
                                  capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{what}: timed out after {timeout:.0f}s") from None
        # uv prints ::add-mask::<token> for GitHub's log masking: never echo a token.
        output = "\n".join(line for line in (proc.stdout + proc.stderr).strip().splitlines()
                           if "::add-mask::" not in line)
        if proc.returncode != 0:
            raise StepFailed(f"{what} failed (exit {proc.returncode}):\n{output}")
        if show and output:
            print("\n".join(f"      {line}" for line in output.splitlines()), flush=True)
        return proc.stdout

    def manage(self, *args: str, what: str, show: bool = False,
               display: str | None = None) -> None:
        """``python manage.py ...``, run inside this process (saves a Django start-up each)."""
        import io

        from django.core.management import call_command

        print(f"    $ {display or 'python manage.py ' + ' '.join(args)}", flush=True)
        out = io.StringIO()
        try:
            call_command(*args, stdout=out, stderr=out)
        except Exception as exc:
            raise StepFailed(f"{what} failed: {exc}\n{out.getvalue()}") from exc
        if show and out.getvalue().strip():
            print("\n".join(f"      {line}" for line in out.getvalue().strip().splitlines()),
                  flush=True)

    def setup_django(self) -> None:
        os.environ.update(self.server_env())
        import django

        django.setup()

    # --- steps ------------------------------------------------------------------------------
    def prepare(self) -> None:
        say(f"Fresh demo data in {self.data}")
        for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
            (self.data / name).unlink(missing_ok=True)
        for name in ("media", "cache", "sample", "dist", "installed", "tls"):
            shutil.rmtree(self.data / name, ignore_errors=True)
        self.data.mkdir(parents=True, exist_ok=True)

    def tls(self) -> None:
        say("Throwaway certificate authority and server certificate for 127.0.0.1 (trustme)")
        import trustme

        authority = trustme.CA(organization_name="django-trusted-publishing demo CA")
        leaf = authority.issue_cert("127.0.0.1", "localhost")  # a leaf, not a CA: uv insists
        (self.data / "tls").mkdir(parents=True, exist_ok=True)
        authority.cert_pem.write_to_path(str(self.ca))
        leaf.private_key_pem.write_to_path(str(self.data / "tls" / "server.key"))
        with (self.data / "tls" / "server.pem").open("wb") as chain:
            for blob in leaf.cert_chain_pems:
                chain.write(blob.bytes())
        print(f"    CA certificate: {self.ca}")

    def database(self) -> tuple[str, str]:
        say("Database (SQLite) and an admin login")
        self.setup_django()
        self.manage("migrate", "--noinput", "-v", "0", what="migrate",
                    display="python manage.py migrate --noinput")
        password = secrets.token_urlsafe(12)
        print("    $ python manage.py createsuperuser --username admin  (password set below)")
        from django.contrib.auth import get_user_model

        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@example.invalid"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        print(f"    admin user: admin   password: {password}")
        return "admin", password

    def trust(self) -> None:
        say("Trusted issuer (the development identity provider) and a pending trusted publisher")
        self.manage("trusted_publishing", "add-issuer", "--provider", "github",
                    "--url", self.issuer, "--name", "Development IdP (DEBUG only)",
                    what="registering the dev issuer", show=True)
        # Pending: the project does not exist yet; the first publish creates it (through
        # example_project.index.integration.IndexIntegration.create_project).
        self.manage("trusted_publishing", "add-publisher", "--provider", "github",
                    "--issuer", self.issuer, "--repository", REPOSITORY,
                    "--workflow", WORKFLOW, "--environment", ENVIRONMENT,
                    "--project", PROJECT, "--pending",
                    what="registering the trusted publisher", show=True)

    def serve(self) -> None:
        say(f"Starting the index: gunicorn over TLS on {self.base}")
        cmd = [str(BIN / "gunicorn"), "example_project.wsgi:application",
               "--bind", f"127.0.0.1:{self.port}",
               "--certfile", str(self.data / "tls" / "server.pem"),
               "--keyfile", str(self.data / "tls" / "server.key"),
               # Several threads: the index fetches the dev issuer's keys from itself.
               "--workers", "2", "--threads", "4", "--worker-class", "gthread",
               "--no-control-socket", "--timeout", "60", "--graceful-timeout", "3",
               "--access-logfile", "-", "--error-logfile", "-"]
        print(f"    $ {' '.join(cmd)}")
        print(f"    server log: {self.log}")
        log = self.log.open("ab")
        self.server = subprocess.Popen(cmd, cwd=ROOT, env=self.server_env(), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        context = ssl.create_default_context(cafile=str(self.ca))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise StepFailed(f"gunicorn exited (status {self.server.returncode}):\n"
                                 + self.log_tail())
            try:
                with opener.open(f"{self.base}/_/oidc/audience", timeout=2) as response:
                    print(f"    audience: {response.read().decode()}")
                    return
            except OSError:
                time.sleep(0.3)
        raise StepFailed("the index did not start within 60s:\n" + self.log_tail())

    def build(self) -> list[Path]:
        say(f"Building the sample package {PROJECT} {VERSION} (hatchling, offline)")
        src = self.data / "sample"
        module = PROJECT.replace("-", "_")
        (src / "src" / module).mkdir(parents=True, exist_ok=True)
        (src / "src" / module / "__init__.py").write_text(
            f'"""Published from a (simulated) GitHub Actions job."""\n\n__version__ = "{VERSION}"\n'
        )
        (src / "README.md").write_text(f"# {PROJECT}\n\nPublished with Trusted Publishing.\n")
        (src / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            f'[project]\nname = "{PROJECT}"\nversion = "{VERSION}"\nreadme = "README.md"\n'
            'requires-python = ">=3.9"\n'
            'description = "Sample package of the django-trusted-publishing demo"\n\n'
            f'[tool.hatch.build.targets.wheel]\npackages = ["src/{module}"]\n'
        )
        dist = self.data / "dist"
        self.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                  "--outdir", dist, src], env=self.base_env(), what="building the package")
        files = sorted(dist.iterdir())
        for file in files:
            print(f"    built {file.name}")
        return files

    def publish(self, files: list[Path]) -> None:
        say("Publishing with uv through Trusted Publishing, as a GitHub Actions job would")
        job = {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.issuer}/token",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
            "SSL_CERT_FILE": str(self.ca),
        }
        for key, value in job.items():
            shown = "<random>" if key == "ACTIONS_ID_TOKEN_REQUEST_TOKEN" else value
            print(f"    {key}={shown}")
        uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
        if uv is None:
            raise StepFailed("uv is not installed (pip install -e '.[example]')")
        self.run([uv, "publish", "--trusted-publishing", "always",
                  "--publish-url", f"{self.base}/legacy/", *files],
                 env={**self.base_env(), **job}, what="uv publish", show=True)

    def install(self) -> None:
        say(f"Installing {PROJECT}=={VERSION} back from {self.base}/simple/ with pip")
        target = self.data / "installed"
        self.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps",
                  # pip >= 24.2 (truststore) cannot verify https to an IP address; the demo
                  # certificate also names localhost.
                  "--index-url", f"{self.base.replace('://127.0.0.1:', '://localhost:')}/simple/",
                  "--cert", self.ca,
                  "--target", target, f"{PROJECT}=={VERSION}"],
                 env=self.base_env(), what="pip install", show=True)
        module = PROJECT.replace("-", "_")
        version = self.run(
            [sys.executable, "-c", f"import {module}; print({module}.__version__)"],
            env={**self.base_env(), "PYTHONPATH": str(target)}, what="importing the package",
        ).strip()
        if version != VERSION:
            raise StepFailed(f"installed {module} reports version {version!r}, not {VERSION}")
        print(f"    import {module} -> __version__ == {version!r}")

    def summary(self, user: str, password: str) -> None:
        say("Done: the package went CI job → identity token → upload token → index → pip")
        print(f"""
    Open (your browser will warn about the demo CA; trust {self.ca} or click through):
      Admin ............ {self.base}/admin/          user {user!r} password {password!r}
      Uploaded files ... {self.base}/admin/index/file/
      Audit log ........ {self.base}/admin/trusted_publishing/auditevent/
      Publishers ....... {self.base}/admin/trusted_publishing/publisher/
      Issued tokens .... {self.base}/admin/trusted_publishing/issuedtoken/
      Simple index ..... {self.base}/simple/
      The project ...... {self.base}/simple/{PROJECT}/
      PEP 807 discovery  {self.base}/.well-known/pytp?discover=%2Flegacy%2F
      Dev IdP .......... {self.issuer}/          (GitLab-shaped tokens: {self.issuer}/gitlab)

    Play the CI job again (bump the version first, files are immutable):
      GITHUB_ACTIONS=true ACTIONS_ID_TOKEN_REQUEST_URL={self.issuer}/token \\
      ACTIONS_ID_TOKEN_REQUEST_TOKEN={self.request_token} SSL_CERT_FILE={self.ca} \\
      .venv/bin/uv publish --trusted-publishing always --publish-url {self.base}/legacy/ dist/*
""", flush=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait(timeout=5)

    def main(self) -> int:
        try:
            self.prepare()
            self.tls()
            user, password = self.database()
            self.trust()
            self.serve()
            files = self.build()
            self.publish(files)
            self.install()
            self.summary(user, password)
            if self.once:
                return 0
            print("    Serving until Ctrl-C ...", flush=True)
            assert self.server is not None
            status = self.server.wait()
            print(f"demo: the server stopped (status {status}):\n{self.log_tail()}",
                  file=sys.stderr)
            return 1
        except StepFailed as exc:
            print(f"\ndemo: FAILED: {exc}", file=sys.stderr)
            if self.server is not None:
                print(f"\n--- last lines of {self.log}\n{self.log_tail()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ndemo: stopped.")
            return 0
        finally:
            self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_project.demo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0,
                        help="TLS port on 127.0.0.1 (default: 8443 if free, else any free port)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".demo",
                        help="where the database, files, keys and certificates go")
    parser.add_argument("--once", action="store_true",
                        help="stop after the install check instead of serving until Ctrl-C")
    args = parser.parse_args(argv)
    port = args.port or (8443 if port_is_free(8443) else free_port())
    if not port_is_free(port):
        print(f"demo: port {port} on 127.0.0.1 is in use; pick another with --port",
              file=sys.stderr)
        return 1
    return Demo(port, args.data_dir.resolve(), args.once).main()


if __name__ == "__main__":
    sys.exit(main())
