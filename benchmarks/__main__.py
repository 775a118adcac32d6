"""``python -m benchmarks [--quick] [--output PATH] [--database-url URL] [--cache-url URL]``

Measures, side by side on this machine: bare PyJWT verification (the baseline), the test-client
floor, the mint view in-process, upload authentication, the same with 100,000-row tables, query
counts, identity-provider calls, and minting over HTTP against gunicorn on loopback (SQLite and,
when a PostgreSQL URL is given, PostgreSQL). Prints a table, writes JSON
(``benchmarks/results/latest.json`` by default) and exits non-zero when a target fails (in
``--quick`` mode only for correctness targets: errors, query counts, identity-provider calls).
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
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql"}
ROOT = HERE.parent

FULL = {
    # Interleaved rounds; each figure is its best round (see docs/performance.md). Five give a
    # quiet moment to every figure on a shared virtual machine.
    "rounds": 5,
    "phase_time_limit": 60,
    "mint_iterations": 3000,  # over all rounds
    "upload_iterations": 3000,
    "first_use_tokens": 1000,
    "scale_rows": 100_000,
    "http_requests": 6000,
    "http_workers": 2,
    "http_threads": 4,
    "http_concurrency": 8,
    "http_time_limit": 60,
}
QUICK = {
    **FULL,
    "rounds": 3,
    "phase_time_limit": 3,
    "mint_iterations": 300,
    "upload_iterations": 300,
    "first_use_tokens": 100,
    "scale_rows": 10_000,
    "http_requests": 600,
    "http_time_limit": 10,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the trusted-publishing exchange and upload check on this machine.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, < 1 minute")
    parser.add_argument(
        "--output", type=Path, default=HERE / "results" / "latest.json", help="JSON results file"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="PostgreSQL server to benchmark too (default: $DATABASE_URL). Only its host, port "
        "and credentials are used: the benchmark creates its own database (--pg-database).",
    )
    parser.add_argument("--pg-database", default="tp_bench", help="database name to (re)create")
    parser.add_argument(
        "--cache-url",
        default=os.environ.get("CACHE_URL", ""),
        help="shared cache (default: $CACHE_URL, else Redis on 127.0.0.1:6379 if it answers, "
        "else a file cache)",
    )
    parser.add_argument("--concurrency", type=int, help="HTTP clients (default 8)")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads per gunicorn worker (default 4, gthread; 1 = sync worker, no keep-alive)",
    )
    parser.add_argument(
        "--sqlite-sync",
        choices=["NORMAL", "FULL"],
        default="NORMAL",
        help="SQLite synchronous mode in WAL (FULL: an fsync per commit)",
    )
    parser.add_argument(
        "--skip-sqlite", action="store_true", help="only benchmark the PostgreSQL server"
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
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "django": django.get_version(),
        "pyjwt": jwt.__version__,
        "cryptography": cryptography.__version__,
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def sqlite_commit_probe(workdir: Path, n: int = 200) -> dict[str, float]:
    """One-row autocommit INSERT in WAL mode, with and without an fsync per commit: what the
    disk of this machine charges for durability (context for every SQLite figure)."""
    import sqlite3
    import statistics

    out: dict[str, float] = {}
    for sync in ("FULL", "NORMAL"):
        path = workdir / f"probe-{sync}.sqlite3"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("CREATE TABLE t (x INTEGER)")
        samples = []
        for i in range(n):
            started = time.perf_counter()
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            samples.append((time.perf_counter() - started) * 1000)
        conn.close()
        out[f"wal_{sync.lower()}_commit_median_ms"] = statistics.median(samples)
    return out


def prepare_postgres(url: str, name: str) -> str:
    """(Re)create database ``name`` on the server of ``url``; return its URL."""
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


# --- runs -----------------------------------------------------------------------------------
def run_backend(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    out = Path(spec["log_dir"]) / f"result-{spec['name']}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.backend", json.dumps(spec), str(out)],
            cwd=ROOT,
            env=env,
            timeout=timeout,
            stdout=subprocess.PIPE,
            stderr=None,  # progress lines go straight to the terminal
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not out.exists():
        return {"error": f"exited {proc.returncode} after {time.monotonic() - started:.0f} s"}
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.concurrency:
        sizes["http_concurrency"] = args.concurrency
    if args.threads:
        sizes["http_threads"] = args.threads
    os.environ["TP_BENCH_SQLITE_SYNC"] = args.sqlite_sync
    started = time.monotonic()
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
            "sqlite_synchronous": args.sqlite_sync,
            "probe": sqlite_commit_probe(workdir),
            "backends": {},
        }
        specs: list[dict[str, Any]] = []
        # Logs outlive the temporary directory, for a failed run's post-mortem.
        log_dir = args.output.parent / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        common = {
            "cache_url": cache_url,
            "log_dir": str(log_dir),
            "sizes": sizes,
        }
        if not args.skip_sqlite:
            specs.append(
                {
                    **common,
                    "name": "sqlite",
                    "database_url": f"sqlite:///{workdir / 'bench.sqlite3'}",
                    "cache_prefix": f"tpbench-{run_id}-sqlite",
                    "phases": ["inprocess", "http", "scale"],
                }
            )
        if args.database_url and urlsplit(args.database_url).scheme not in POSTGRES_SCHEMES:
            print(
                "ignoring the database URL: only PostgreSQL servers are benchmarked besides the "
                "built-in SQLite run",
                file=sys.stderr,
            )
        elif args.database_url:
            try:
                pg_url = prepare_postgres(args.database_url, args.pg_database)
            except Exception as exc:
                results["backends"]["postgresql"] = {
                    "error": f"cannot prepare PostgreSQL: {type(exc).__name__}"
                }
            else:
                specs.append(
                    {
                        **common,
                        "name": "postgresql",
                        "database_url": pg_url,
                        "cache_prefix": f"tpbench-{run_id}-pg",
                        "phases": ["http"] if args.quick else ["inprocess", "http", "scale"],
                    }
                )
        print(
            f"benchmark ({results['mode']}): {results['machine']['nproc']} CPUs, "
            f"{results['machine']['cpu']}, cache {results['cache_url_scheme']}",
            file=sys.stderr,
            flush=True,
        )
        for spec in specs:
            results["backends"][spec["name"]] = run_backend(
                spec, timeout=120 if args.quick else 1200
            )
        results["machine"]["loadavg_end"] = os.getloadavg()
        results["seconds"] = time.monotonic() - started

    rows = report.build_rows(results)
    results["rows"] = report.rows_as_json(rows)
    status = report.exit_status(rows, quick=args.quick)
    results["exit_status"] = status
    table = report.render(rows)
    print(table)
    print(
        f"\n{results['mode']} run in {results['seconds']:.0f} s; load average "
        f"{results['machine']['loadavg_start'][0]:.2f} -> "
        f"{results['machine']['loadavg_end'][0]:.2f}; SQLite WAL commit here: "
        f"{results['probe']['wal_full_commit_median_ms']:.3f} ms with fsync, "
        f"{results['probe']['wal_normal_commit_median_ms']:.3f} ms without"
    )
    if args.quick:
        print("quick mode: timing targets are reported, only correctness targets decide the exit")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    print(f"results written to {args.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
