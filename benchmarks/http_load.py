"""Mint over real HTTP: gunicorn (2 workers) on loopback, N keep-alive client threads.

The server runs ``benchmarks.wsgi`` with the same environment (database, cache, prefix) as the
driver. Clients use ``http.client`` with one persistent connection each; every request carries a
fresh, pre-signed identity token so the replay check never refuses one.

Two shapes of load: :func:`run_load` sends as fast as the clients can (throughput, figure 3);
:func:`run_paced` sends at a fixed rate and times each request from the moment it was due, so a
stall (a lock held by the purge, figure 5) shows in the latencies instead of slowing the load.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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
        env = {**os.environ, "TP_BENCH_APP_NAME": "tp-bench-server"}
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=env, stdout=self._log, stderr=self._log
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


def run_paced(
    port: int,
    bodies: list[bytes],
    *,
    rate: float,
    concurrency: int,
    stop: Callable[[], bool],
    time_limit: float,
) -> dict[str, Any]:
    """Send request k at ``start + k / rate`` until ``stop()`` is true, the bodies run out or
    ``time_limit`` s pass. Latency counts from the moment a request was due (no coordinated
    omission: a stalled server delays every request due meanwhile). Returns the summary and
    the samples as (due offset s, latency ms, status)."""
    lock = threading.Lock()
    position = 0
    samples: list[tuple[float, float, str]] = []
    start_gate = threading.Barrier(concurrency + 1)
    started = 0.0
    halted = threading.Event()

    def next_slot() -> tuple[int, float] | None:
        nonlocal position
        with lock:
            if halted.is_set() or position >= len(bodies):
                return None
            index = position
            position += 1
        return index, started + index / rate

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[tuple[float, float, str]] = []
        start_gate.wait()
        try:
            while (slot := next_slot()) is not None:
                index, due = slot
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                try:
                    status, _ = _post(conn, bodies[index])
                    outcome = str(status)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    outcome = type(exc).__name__
                mine.append((due - started, (time.perf_counter() - due) * 1000, outcome))
        finally:
            conn.close()
            with lock:
                samples.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    started = time.perf_counter() + 0.05
    started_epoch = time.time() + 0.05
    start_gate.wait()
    deadline = started + time_limit
    while not halted.is_set():
        if stop() or time.perf_counter() > deadline or position >= len(bodies):
            halted.set()
        else:
            time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=90)
    elapsed = time.perf_counter() - started
    return {
        **summarise_samples(samples),
        "seconds": elapsed,
        "samples": samples,
        "started_epoch": started_epoch,
        "ran_out_of_tokens": position >= len(bodies),
        "rate": rate,
    }


def summarise_samples(samples: list[tuple[float, float, str]]) -> dict[str, Any]:
    latencies = [s[1] for s in samples]
    statuses: dict[str, int] = {}
    for _, _, outcome in samples:
        statuses[outcome] = statuses.get(outcome, 0) + 1
    ok = statuses.get("200", 0)
    return {
        "requests": len(samples),
        "ok": ok,
        "errors": len(samples) - ok,
        "statuses": statuses,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
    }
