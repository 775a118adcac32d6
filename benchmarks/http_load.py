"""Mint over real HTTP: gunicorn (2 workers) on loopback, N keep-alive client threads.

The server runs ``benchmarks.wsgi`` with the same environment (database, cache, prefix) as the
driver. Clients use ``http.client`` with one persistent connection each; every request carries a
fresh, pre-signed identity token so the replay check never refuses one.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .stats import percentile

ROOT = Path(__file__).resolve().parent.parent
MINT_PATH = "/_/oidc/mint-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with ``workers`` processes; ``threads`` > 1 selects the gthread worker, which
    keeps client connections alive (the sync worker closes each one)."""

    def __init__(self, *, workers: int, threads: int, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread" if threads > 1 else "sync",
            "--keep-alive",
            "30",
            "--no-control-socket",
            "--log-level",
            "warning",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=os.environ.copy(), stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/_/oidc/audience")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request(
        "POST",
        MINT_PATH,
        body=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    response = conn.getresponse()
    return response.status, response.read()


def run_load(
    port: int, bodies: list[bytes], *, concurrency: int, time_limit: float
) -> dict[str, Any]:
    """Send every body once from ``concurrency`` threads (bounded by ``time_limit`` s)."""
    lock = threading.Lock()
    position = 0
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    deadline = time.monotonic() + time_limit
    start_gate = threading.Barrier(concurrency + 1)

    def next_body() -> bytes | None:
        nonlocal position
        with lock:
            if position >= len(bodies) or time.monotonic() > deadline:
                return None
            body = bodies[position]
            position += 1
            return body

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        start_gate.wait()
        try:
            while (body := next_body()) is not None:
                started = time.perf_counter()
                try:
                    status, _ = _post(conn, body)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnect on the next request
                    with lock:
                        errors.append(type(exc).__name__)
                    continue
                mine.append((time.perf_counter() - started) * 1000)
                with lock:
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=time_limit + 60)
    elapsed = time.perf_counter() - started
    ok = statuses.get("200", 0)
    return {
        "requests": sum(statuses.values()) + len(errors),
        "ok": ok,
        "errors": sum(n for s, n in statuses.items() if s != "200") + len(errors),
        "statuses": statuses,
        "connection_errors": sorted(set(errors)),
        "seconds": elapsed,
        "throughput_per_s": ok / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "concurrency": concurrency,
    }
