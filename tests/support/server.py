"""The example index as a real server process: gunicorn with TLS on loopback.

:class:`IndexServer` owns a throwaway CA and leaf certificate (trustme; the leaf is not a CA,
which uv insists on), a fresh database (a temporary SQLite file, or a throwaway database on the
PostgreSQL server named by ``DATABASE_URL``; ``CACHE_URL`` is passed through with a unique key
prefix), a gunicorn over https and, optionally, a second one over plain http for the clients
whose OIDC requests ignore custom CAs (maturin). :class:`Agent` reads and writes the server's
database from a helper process with the server's own settings.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from .environment import clean_env

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> TLSFiles:
        directory.mkdir(parents=True, exist_ok=True)
        authority = trustme.CA(organization_name="e2e throwaway CA")
        leaf = authority.issue_cert("127.0.0.1", "localhost")
        files = cls(directory / "ca.pem", directory / "server-chain.pem", directory / "server.key")
        authority.cert_pem.write_to_path(str(files.ca))
        leaf.private_key_pem.write_to_path(str(files.key))
        with files.cert.open("wb") as chain:
            for blob in leaf.cert_chain_pems:
                chain.write(blob.bytes())
        return files

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


class Database:
    """A database only this test session uses."""

    def __init__(self, workdir: Path) -> None:
        self.outer_url = os.environ.get("DATABASE_URL", "")
        self.name = f"tp_e2e_{uuid.uuid4().hex[:10]}"
        self.is_postgres = self.outer_url.startswith(("postgres://", "postgresql://", "pgsql://"))
        if self.is_postgres:
            base, _, _old = self.outer_url.rpartition("/")
            self.url = f"{base}/{self.name}"
        else:
            self.url = f"sqlite:///{workdir / 'index.sqlite3'}"

    def _admin(self, sql: str) -> None:
        import psycopg

        # libpq understands postgres:// and postgresql://; django-environ also knows pgsql://.
        # Connect to the maintenance database: the one DATABASE_URL names need not exist
        # (pytest-django only creates test_<name>).
        base = self.outer_url.split("://", 1)[1].rpartition("/")[0]
        conninfo = f"postgresql://{base}/postgres"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create(self) -> None:
        if self.is_postgres:
            self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.is_postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Agent:
    """Line-delimited JSON RPC to ``python -m tests.support.agent`` (see agent.py)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.agent"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        ready = self._read(60)
        if not ready.get("ok"):
            raise RuntimeError(f"agent failed to start: {ready}")

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the database agent did not answer in time")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the database agent exited (see agent.log)")
        return json.loads(line)

    def __call__(self, op: str, timeout: float = 60, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, "args": args}) + "\n").encode())
        self.proc.stdin.flush()
        reply = self._read(timeout)
        if not reply["ok"]:
            raise RuntimeError(f"agent op {op} failed: {reply['error']}\n{reply['traceback']}")
        return reply["result"]

    def manage(self, *argv: str) -> dict[str, Any]:
        return self("manage", argv=list(argv))

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


@dataclass
class IndexServer:
    workdir: Path
    audience: str = "e2e-index.test"
    with_http: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    threads: int = 4

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = TLSFiles.create(self.workdir / "tls")
        self.database = Database(self.workdir)
        self.port = free_port()
        self.http_port = free_port() if self.with_http else None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.agent: Agent | None = None
        # One secret key and one cache key space for every process of this server (both
        # gunicorns and the agent): a change the agent makes must reach the workers' cache.
        # A fresh key space per server: nothing cached by an earlier session (keys of an earlier
        # fake issuer on the same port, throttle counters) can leak in.
        self.secret_key = "e2e-" + uuid.uuid4().hex
        self.cache_key_prefix = "e2e-" + uuid.uuid4().hex[:8]
        try:  # let the suite-wide secrets guard scan this server's logs too
            from tests.plugins.secrets_guard import register_log_dir

            register_log_dir(self.workdir)
        except ImportError:
            pass

    # --- URLs ---------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def http_base_url(self) -> str:
        assert self.http_port is not None
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def upload_url(self) -> str:
        return f"{self.base_url}/legacy/"

    @property
    def simple_url(self) -> str:
        return f"{self.base_url}/simple/"

    # --- environment --------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = clean_env(self.workdir / "home")
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "example_project.settings",
                "PYTHONPATH": str(REPO_ROOT),
                "DEBUG": "false",
                "DEVIDP_ENABLED": "false",
                "SECRET_KEY": self.secret_key,
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "INDEX_DATA_DIR": str(self.workdir / "data"),
                "DATABASE_URL": self.database.url,
                "CACHE_URL": os.environ.get("CACHE_URL", "locmemcache://e2e"),
                "CACHE_KEY_PREFIX": self.cache_key_prefix,
                "TP_AUDIENCE": self.audience,
                "TP_ALLOW_INSECURE_LOOPBACK_ISSUERS": "true",
                "TP_EXCHANGE_RATE_LIMIT": "",
                "TP_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> IndexServer:
        self.database.create()
        env = self.env()
        self.agent = Agent(env, self.workdir / "agent.log")
        self.agent.manage("migrate", "--noinput", "-v", "0")
        self._spawn(self.port, tls=True)
        if self.http_port is not None:
            self._spawn(self.http_port, tls=False)
        self._wait_ready(f"{self.base_url}/simple/")
        if self.http_port is not None:
            self._wait_ready(f"{self.http_base_url}/simple/")
        return self

    def _spawn(self, port: int, *, tls: bool) -> None:
        name = "https" if tls else "http"
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "example_project.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--worker-class",
            "gthread",
            "--timeout",
            "60",
            "--graceful-timeout",
            "3",
            "--no-control-socket",
            "--access-logfile",
            str(self.workdir / f"access-{name}.log"),
            "--error-logfile",
            str(self.workdir / f"error-{name}.log"),
            "--capture-output",
        ]
        if tls:
            cmd += ["--certfile", str(self.tls.cert), "--keyfile", str(self.tls.key)]
        self.processes.append(
            subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def _wait_ready(self, url: str, timeout: float = 60) -> None:
        context = self.tls.client_context() if url.startswith("https") else None
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"gunicorn exited early:\n{self.log_tail()}")
            try:
                with opener.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"{url} did not come up in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        chunks = []
        for log in sorted(self.workdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(chunks)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.processes.clear()
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        self.database.drop()
