"""``python -m benchmarks [--quick] [--database-url URL] [--cache-url URL] [--output PATH]``

Measures what users of an index with Trusted Publishing feel, on this machine (figures numbered
as in docs/performance.md):

1. one upload with a minted token vs Django's check of an ordinary password;
2. a whole ``uv publish`` release through Trusted Publishing vs with a password;
3. mints per second over HTTP on PostgreSQL with 2 gunicorn workers;
4. mint and upload cost with a large history vs a near-empty database, and their statements;
5. rows written per release, and ``trusted_publishing purge`` while mints continue;
6. identity-provider requests: none in steady state, one fetch per key rotation;
7. the in-process mint vs a bare ``jwt.decode`` (information).

Prints one table, writes JSON (``benchmarks/results/latest.json`` by default) and exits
non-zero when a target fails; with ``--quick`` (CI) only correctness targets (errors,
identity-provider requests) decide the exit status, never timing ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql"}

FULL: dict[str, Any] = {
    # In-process: interleaved rounds, each figure taken from its best round (see the docs).
    "rounds": 5,
    "mints_per_round": 400,  # each minted token then uploads two files
    "password_checks_per_round": 3,
    "phase_time_limit": 60,
    # HTTP (figure 3) and the key rotation (figure 6).
    "http_requests": 6000,
    "http_workers": 2,
    "http_threads": 4,
    "http_concurrency": 8,
    "http_time_limit": 60,
    "rotation_requests": 300,
    # History (figure 4).
    "history_publishers": 100_000,
    "history_tokens": 100_000,
    "history_events": 1_000_000,
    # Purge (figure 5): expired rows, and the steady mint rate kept up meanwhile.
    "purge_replay_records": 500_000,
    "purge_tokens": 500_000,
    "purge_rate": 100,
    "purge_quiet_seconds": 10,
    "purge_time_limit": 240,
    # Releases (figure 2): timed releases of each kind.
    "release_repetitions": 7,
}
QUICK: dict[str, Any] = {
    **FULL,
    "rounds": 2,
    "mints_per_round": 100,
    "password_checks_per_round": 2,
    "phase_time_limit": 5,
    "http_requests": 600,
    "http_time_limit": 10,
    "rotation_requests": 100,
    "history_publishers": 5_000,
    "history_tokens": 5_000,
    "history_events": 50_000,
    "purge_replay_records": 10_000,
    "purge_tokens": 10_000,
    "purge_rate": 50,
    "purge_quiet_seconds": 3,
    "purge_time_limit": 30,
    "release_repetitions": 2,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark what Trusted Publishing costs the users of an index, here.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, about a minute; only correctness targets can fail",
    )
    parser.add_argument(
        "--output", type=Path, default=HERE / "results" / "latest.json", help="JSON results file"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="PostgreSQL server (default: $DATABASE_URL). Only its host, port and credentials "
        "are used: the benchmark creates its own databases. Without one: SQLite, and the "
        "PostgreSQL figures (3, 5) are not measured.",
    )
    parser.add_argument(
        "--pg-database",
        help="name of the database to (re)create and drop at the end (default: tp_bench_<run "
        "id>, so concurrent runs on one server never touch each other's)",
    )
    parser.add_argument(
        "--cache-url",
        default=os.environ.get("CACHE_URL", ""),
        help="shared cache (default: $CACHE_URL, else Redis on 127.0.0.1:6379 if it answers, "
        "else a file cache)",
    )
    parser.add_argument("--concurrency", type=int, help="HTTP clients (default 8)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn worker (default 4)")
    parser.add_argument(
        "--skip-release", action="store_true", help="leave out figure 2 (the uv releases)"
    )
    return parser.parse_args(argv)


# --- environment --------------------------------------------------------------------------
def _redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def choose_cache(explicit: str, workdir: Path) -> str:
    if explicit:
        return explicit
    if _redis_answers():
        return "redis://127.0.0.1:6379/0"
    return f"filecache://{workdir / 'cache'}"


def machine() -> dict[str, Any]:
    import cryptography
    import django
    import jwt

    cpu = "unknown"
    memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "django": django.get_version(),
        "pyjwt": jwt.__version__,
        "cryptography": cryptography.__version__,
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def prepare_postgres(url: str, name: str) -> tuple[str, str]:
    """(Re)create database ``name`` on the server of ``url``; its URL and the server version."""
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()[0]
    return urlunsplit(parts._replace(path=f"/{name}")), version


def drop_postgres(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:
        print(f"could not drop {name}: {type(exc).__name__}", file=sys.stderr)


def run_part(module: str, spec: dict[str, Any], out: Path, timeout: float) -> dict[str, Any]:
    """``python -m benchmarks.<module> SPEC OUT`` in its own process; its JSON result (what it
    saved so far, plus an error when it failed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", json.dumps(spec), str(out)],
            cwd=ROOT,
            env=env,
            timeout=timeout,
            check=False,
            stdout=sys.stderr,
            stderr=None,  # progress lines go to the terminal
        )
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        returncode = None
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if returncode is None:
        result["error"] = f"timed out after {timeout:.0f} s"
    elif returncode != 0 and not result.get("error"):
        result["error"] = f"exited {returncode} after {time.monotonic() - started:.0f} s"
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.concurrency:
        sizes["http_concurrency"] = args.concurrency
    if args.threads:
        sizes["http_threads"] = args.threads
    started = time.monotonic()
    log_dir = args.output.parent / "logs"  # outlives the run, for a post-mortem
    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        workdir = Path(tmp)
        cache_url = choose_cache(args.cache_url, workdir)
        run_id = uuid.uuid4().hex[:8]
        results: dict[str, Any] = {
            "mode": "quick" if args.quick else "full",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "sizes": sizes,
            "cache_url_scheme": urlsplit(cache_url).scheme,
        }
        pg = urlsplit(args.database_url).scheme in POSTGRES_SCHEMES
        if args.database_url and not pg:
            print(
                "ignoring the database URL: only PostgreSQL is benchmarked besides SQLite",
                file=sys.stderr,
            )
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        # The near-empty twin figure 4 alternates with (same server, same settings).
        empty_url = f"sqlite:///{workdir / 'bench-empty.sqlite3'}"
        if pg:
            name = args.pg_database or f"tp_bench_{run_id}"
            try:
                database_url, results["postgresql_version"] = prepare_postgres(
                    args.database_url, name
                )
                empty_url, _ = prepare_postgres(args.database_url, f"{name}_empty")
            except Exception as exc:
                results["backend"] = {"error": f"cannot prepare PostgreSQL: {exc}"[:300]}
        results["database"] = "postgresql" if pg else "sqlite"
        if cache_url.startswith("redis"):
            try:
                import redis

                info = redis.Redis.from_url(cache_url, socket_timeout=2).info("server")
                results["redis_version"] = info.get("redis_version")
            except Exception:
                pass
        print(
            f"benchmark ({results['mode']}): {results['machine']['nproc']} CPUs, "
            f"{results['machine']['cpu']}, {results['database']}, cache "
            f"{results['cache_url_scheme']}",
            file=sys.stderr,
            flush=True,
        )
        if "backend" not in results:
            spec = {
                "name": results["database"],
                "database_url": database_url,
                "empty_database_url": empty_url,
                "cache_url": cache_url,
                "cache_prefix": f"tpbench-{run_id}",
                "log_dir": str(log_dir),
                "sizes": sizes,
            }
            results["backend"] = run_part(
                "backend", spec, log_dir / "backend.json", timeout=180 if args.quick else 1500
            )
            if pg:
                drop_postgres(database_url)
                drop_postgres(empty_url)
        if not args.skip_release:
            spec = {
                "outer_database_url": args.database_url if pg else "",
                "cache_url": cache_url,
                "sizes": sizes,
                "log_dir": str(log_dir),
            }
            results["release"] = run_part(
                "release", spec, log_dir / "release.json", timeout=120 if args.quick else 600
            )
        results["machine"]["loadavg_end"] = os.getloadavg()
        results["seconds"] = time.monotonic() - started

    rows = report.build_rows(results)
    if args.skip_release:
        rows = [r for r in rows if r.figure != "2"]
    results["rows"] = report.rows_as_json(rows)
    status = report.exit_status(rows, quick=args.quick)
    results["exit_status"] = status
    print(report.render(rows))
    m = results["machine"]
    print(
        f"\n{results['mode']} run in {results['seconds']:.0f} s on {m['nproc']} CPUs "
        f"({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, Django {m['django']}, "
        f"{results['database']} {results.get('postgresql_version', '')}".rstrip()
        + f", cache {results['cache_url_scheme']} {results.get('redis_version', '')}".rstrip()
        + (
            f", {results['release']['uv_version']}"
            if results.get("release", {}).get("uv_version")
            else ""
        )
        + f"; load average {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}"
    )
    if args.quick:
        print("quick mode: timing targets are reported, only correctness targets decide the exit")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    print(f"results written to {args.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
