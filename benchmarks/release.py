"""Figure 2: one whole release with ``uv publish``, through Trusted Publishing and with a
password, against the same server: ``python -m benchmarks.release SPEC_JSON OUTPUT_JSON``.

The server is the example index as the end-to-end tests run it (``tests.support.server``):
gunicorn, 2 workers x 4 threads, TLS on 127.0.0.1 with a throwaway CA, the configured database
(a throwaway database on the PostgreSQL server, else an SQLite file) and cache. The counting
identity provider plays GitHub Actions' ID-token API, so uv runs exactly as in a CI job:

* Trusted Publishing: ``GITHUB_ACTIONS=true`` + ``ACTIONS_ID_TOKEN_REQUEST_*``,
  ``uv publish --trusted-publishing always``: audience, ID token, mint, two uploads, burn;
* password: ``UV_PUBLISH_USERNAME``/``UV_PUBLISH_PASSWORD`` of an ordinary (staff) user,
  ``uv publish --trusted-publishing never``: two uploads, each checking the password with
  Django's default hasher.

Each release is a fresh version (a wheel and an sdist) of the same project; the two kinds
alternate, and which goes first alternates too. Wall time is the whole ``uv`` process, as a CI
step sees it. The server's own time per request comes from its access log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "bench-release"
USERNAME = "releaser"
_ACCESS = re.compile(r"^(?P<method>[A-Z]+) (?P<path>\S+) \S+ (?P<status>\d{3}) (?P<us>\d+)\s*$")

_COUNT_ROWS = """
from django.apps import apps
result = {
    m._meta.db_table: m.objects.count()
    for m in apps.get_models()
    if m._meta.app_label in ("trusted_publishing", "index")
}
"""


def _uv() -> str:
    local = Path(sys.executable).parent / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        raise RuntimeError("uv is not installed (pip install -e '.[test]')")
    return found


class Releases:
    def __init__(self, spec: dict[str, Any], output: Path) -> None:
        self.spec = spec
        self.output = output
        self.result: dict[str, Any] = {}
        self.uv = _uv()

    def save(self) -> None:
        self.output.write_text(json.dumps(self.result, indent=2, default=str))

    def run(self) -> None:
        # The example index's server process reads these; this process only starts it.
        os.environ["DATABASE_URL"] = self.spec["outer_database_url"]
        os.environ["CACHE_URL"] = self.spec["cache_url"]
        from django.conf import settings

        from tests.support.server import IndexServer

        from .idp import CountingIdP

        reps = int(self.spec["sizes"]["release_repetitions"])
        workdir = Path(tempfile.mkdtemp(prefix="tp-bench-release-"))
        server = IndexServer(
            workdir / "server",
            with_http=False,
            extra_env={
                # Request time (µs) in the access log, for the server's share of each release.
                "GUNICORN_CMD_ARGS": "--access-logformat '%(m)s %(U)s %(H)s %(s)s %(D)s'",
                "TP_LOG_LEVEL": "WARNING",
            },
        )
        # TestIssuer reads the audience from the settings when none is given.
        settings.configure(TRUSTED_PUBLISHING={"AUDIENCE": server.audience})
        self.result["uv_version"] = subprocess.run(
            [self.uv, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        try:
            server.start()
            self.access_log = server.workdir / "access-https.log"
            self.access_offset = 0
            with CountingIdP(
                repository="acme/bench-release", request_token=secrets.token_hex(12)
            ) as idp:
                self.measure(server, idp, workdir, reps)
        finally:
            # Keep the server's logs (gunicorn, the agent) for a post-mortem.
            log_dir = Path(self.spec["log_dir"])
            for log in server.workdir.glob("*.log"):
                shutil.copy(log, log_dir / f"release-{log.name}")
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    def measure(self, server: Any, idp: Any, workdir: Path, reps: int) -> None:
        from tests.support.dists import make_dists
        from tests.support.environment import clean_env, github_actions_env

        agent = server.agent
        password = secrets.token_urlsafe(16)
        agent.manage(
            "trusted_publishing",
            "add-issuer",
            "--provider",
            "github",
            "--url",
            idp.url,
            "--name",
            "benchmark issuer",
        )
        agent("create_project", name=PROJECT)
        agent.manage(
            "trusted_publishing",
            "add-publisher",
            "--provider",
            "github",
            "--issuer",
            idp.url,
            "--repository",
            idp.repository,
            "--workflow",
            idp.workflow,
            "--project",
            PROJECT,
        )
        agent("create_user", username=USERNAME, password=password, staff=True)
        base = {**clean_env(workdir / "home"), "SSL_CERT_FILE": str(server.tls.ca)}
        envs = {
            "tp": {**base, **github_actions_env(idp.token_url, idp.request_token)},
            "password": {**base, "UV_PUBLISH_USERNAME": USERNAME, "UV_PUBLISH_PASSWORD": password},
        }
        modes = {"tp": "always", "password": "never"}
        counter = iter(range(1, 10_000))

        def release(kind: str) -> dict[str, Any]:
            version = f"1.0.{next(counter)}"
            files = make_dists(PROJECT, version, workdir / "dist" / version)
            self._read_access()
            started = time.perf_counter()
            proc = subprocess.run(
                [
                    self.uv,
                    "publish",
                    "--trusted-publishing",
                    modes[kind],
                    "--publish-url",
                    server.upload_url,
                    *[str(f.path) for f in files],
                ],
                env=envs[kind],
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            wall = (time.perf_counter() - started) * 1000
            if proc.returncode != 0:
                output = "\n".join(
                    line
                    for line in (proc.stdout + proc.stderr).splitlines()
                    if "::add-mask::" not in line
                )
                raise RuntimeError(f"uv publish ({kind}) exited {proc.returncode}: {output[-800:]}")
            time.sleep(0.2)  # the access log line of the last request is written after it
            return {
                "kind": kind,
                "version": version,
                "wall_ms": wall,
                "requests": self._read_access(),
            }

        # Warm-up: the first Trusted Publishing release fetches the issuer's keys.
        release("tp")
        release("password")
        idp.reset_counts()
        timed: list[dict[str, Any]] = []
        for k in range(reps):
            order = ("tp", "password") if k % 2 == 0 else ("password", "tp")
            for kind in order:
                timed.append(release(kind))
            print(f"  [release] {len(timed)}/{2 * reps} releases", file=sys.stderr, flush=True)
        self.result["idp_during_timed_releases"] = idp.fetches()
        self.result["releases"] = timed

        # Rows one release adds (untimed): Trusted Publishing, then password.
        rows: dict[str, Any] = {}
        for kind in ("tp", "password"):
            before = agent("execute", code=_COUNT_ROWS)
            release(kind)
            after = agent("execute", code=_COUNT_ROWS)
            rows[kind] = {
                t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)
            }
        self.result["rows_per_release"] = rows
        files = agent("files", project=PROJECT)
        self.result["files_on_index"] = len(files)
        self.result["files_expected"] = 2 * (len(timed) + 4)
        for kind in ("tp", "password"):
            walls = [r["wall_ms"] for r in timed if r["kind"] == kind]
            self.result[kind] = {
                "n": len(walls),
                "median_ms": statistics.median(walls),
                "min_ms": min(walls),
                "max_ms": max(walls),
                "walls_ms": walls,
                "server_ms_median": _server_medians([r for r in timed if r["kind"] == kind]),
            }
        self.result["delta_ms"] = (
            self.result["tp"]["median_ms"] - self.result["password"]["median_ms"]
        )
        self.save()

    def _read_access(self) -> list[tuple[str, str, int, float]]:
        try:
            with self.access_log.open() as log:
                log.seek(self.access_offset)
                text = log.read()
                self.access_offset = log.tell()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            match = _ACCESS.match(line.strip())
            if match:
                out.append(
                    (match["method"], match["path"], int(match["status"]), int(match["us"]) / 1000)
                )
        return out


def _server_medians(releases: list[dict[str, Any]]) -> dict[str, float]:
    """Median server time per release of each kind of request (ms, from the access log)."""
    per: dict[str, list[float]] = {}
    for r in releases:
        sums: dict[str, float] = {}
        for _method, path, _status, ms in r["requests"]:
            key = "upload" if path.startswith("/legacy/") else path
            sums[key] = sums.get(key, 0) + ms
        for key, value in sums.items():
            per.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in sorted(per.items())}


def main() -> None:
    spec = json.loads(sys.argv[1])
    run = Releases(spec, Path(sys.argv[2]))
    try:
        run.run()
    except BaseException as exc:
        run.result["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        run.result["traceback"] = traceback.format_exc()[-4000:]
        run.save()
        print(run.result["traceback"], file=sys.stderr, flush=True)
        sys.exit(1)
    run.save()


if __name__ == "__main__":
    main()
