"""The configured database's measurements, in their own process (Django settings are per
process): ``python -m benchmarks.backend SPEC_JSON OUTPUT_JSON``.

Phases, in order, each writing its part of the result as soon as it is done (a later failure
keeps the earlier figures):

1. cold start: the issuer and the publisher are registered with the operator CLI, the first
   mint fetches the issuer's keys (one discovery + one JWKS request);
2. in-process on the near-empty database: mint, upload, password check, bare decode
   (figures 1 and 7), statements and rows per release (figures 4 and 5);
3. HTTP: gunicorn, 2 workers, closed-loop mint load (figure 3), then a key rotation under load
   (figure 6);
4. history: 1,000,000 audit events, 100,000 tokens, 100,000 publishers, then phase 2 again
   (figure 4);
5. purge: 1,000,000 expired rows, ``trusted_publishing purge`` while mints continue over HTTP at
   a steady rate (figure 5; PostgreSQL only).

The counting identity provider runs throughout; its requests outside the cold start and the
rotation are the steady-state figure of 6.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


SENTINEL = "tp-bench-sentinel"


def _setup_django(spec: dict[str, Any]) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ["TP_BENCH_DATABASE_URL"] = spec["database_url"]
    os.environ["TP_BENCH_CACHE_URL"] = spec["cache_url"]
    os.environ["TP_BENCH_CACHE_PREFIX"] = spec["cache_prefix"]
    import django

    django.setup()


def say(spec: dict[str, Any], text: str) -> None:
    print(f"  [{spec['name']}] {text}", file=sys.stderr, flush=True)


class Run:
    def __init__(self, spec: dict[str, Any], output: Path) -> None:
        self.spec = spec
        self.sizes = spec["sizes"]
        self.output = output
        self.result: dict[str, Any] = {"phases_done": []}
        self.limit = float(self.sizes["phase_time_limit"])

    def save(self) -> None:
        self.output.write_text(json.dumps(self.result, indent=2, default=str))

    def done(self, phase: str, started: float) -> None:
        self.result["phases_done"].append(phase)
        self.result.setdefault("phase_seconds", {})[phase] = time.perf_counter() - started
        self.save()

    # --- phases ---------------------------------------------------------------------------------
    def run(self) -> None:
        _setup_django(self.spec)
        from django.core.cache import cache
        from django.core.management import call_command
        from django.db import connection

        from .idp import CountingIdP

        started = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        self.result.update(vendor=connection.vendor, migrate_seconds=time.perf_counter() - started)
        # A key that never expires: if it is gone at the end, someone emptied the shared cache
        # during the run (a test suite flushing the same Redis database), and the identity
        # provider requests that followed are explained.
        cache.set(SENTINEL, "1", None)
        with CountingIdP() as idp:
            self.idp = idp
            t0 = time.perf_counter()
            self.register()
            # The near-empty twin of the database, for figure 4's interleaved rounds: set up
            # now, before the cold start, so it costs the identity provider nothing later.
            self.use("empty")
            call_command("migrate", verbosity=0, interactive=False)
            self.register()
            self.use("main")
            self.cold_start()
            self.done("cold start", t0)

            t0 = time.perf_counter()
            self.result["near_empty"] = self.inprocess("near-empty database")
            self.done("in-process", t0)

            if self.sizes["http_requests"]:
                t0 = time.perf_counter()
                self.result["http"] = self.http()
                self.done("http", t0)

            t0 = time.perf_counter()
            self.history()
            self.done("history", t0)

            if connection.vendor == "postgresql" and self.sizes["purge_tokens"]:
                t0 = time.perf_counter()
                self.result["purge"] = self.purge()
                self.done("purge", t0)
            self.result["idp"]["steady_after_rotation"] = idp.fetches()
            self.result["cache_emptied_during_run"] = cache.get(SENTINEL) is None
            self.save()
        _forget_cache_keys(self.spec["cache_prefix"])

    def register(self) -> None:
        """The issuer and the publisher, with the operator CLI."""
        from django.core.management import call_command

        from .inprocess import PROJECT

        idp = self.idp
        call_command(
            "trusted_publishing", "add-issuer", "--provider", "github", "--url", idp.url,
            "--name", "benchmark issuer", stdout=_Null(),
        )  # fmt: skip
        call_command(
            "trusted_publishing", "add-publisher", "--provider", "github", "--issuer", idp.url,
            "--repository", idp.repository, "--workflow", idp.workflow, "--project", PROJECT,
            stdout=_Null(),
        )  # fmt: skip

    def use(self, which: str) -> None:
        """Point the default connection at the main database or at its near-empty twin."""
        import environ
        from django.db import connection

        url = self.spec["database_url" if which == "main" else "empty_database_url"]
        connection.close()
        connection.settings_dict["NAME"] = environ.Env.db_url_config(url)["NAME"]

    def cold_start(self) -> None:
        from .inprocess import mint

        summary, minted, errors = mint(self.idp.sign(3), self.limit)
        if errors or len(minted) != 3:
            raise RuntimeError(f"cold-start mints failed: {errors[:2]}")
        self.last_fetch = time.monotonic()
        self.result["idp"] = {"cold": self.idp.fetches(), "cold_mint_ms": summary["max_ms"]}
        self.idp.reset_counts()

    def one_round(self, runs: dict[str, list[dict[str, Any]]], errors: list[str]) -> None:
        """Sign fresh tokens; bare decode, mint each, upload two files with each minted token,
        check the password: one round of figures 1, 4 and 7."""
        from . import inprocess as ip

        tokens = self.idp.sign(int(self.sizes["mints_per_round"]))
        runs["decode"].append(ip.bare_decode(self.idp, tokens, self.limit))
        summary, minted, errs = ip.mint(tokens, self.limit)
        runs["mint"].append(summary)
        errors += errs
        every, first, errs = ip.uploads(minted, self.limit)
        runs["upload"].append(every)
        runs["upload_first"].append(first)
        errors += errs
        runs["password"].append(
            ip.password_check(int(self.sizes["password_checks_per_round"]), self.limit)
        )

    def summarise(
        self, runs: dict[str, list[dict[str, Any]]], errors: list[str], label: str
    ) -> dict[str, Any]:
        from . import inprocess as ip
        from .stats import best_round

        out: dict[str, Any] = {key: best_round(values) for key, values in runs.items()}
        out["errors"] = len(errors)
        out["error_samples"] = errors[:3]
        out["statements"] = ip.statements(self.idp)
        out["rows_per_release"] = ip.rows_per_release(self.idp)
        out["rows"] = ip.row_counts()
        say(
            self.spec,
            f"in-process ({label}): mint {out['mint']['median_ms']:.2f} ms, upload "
            f"{out['upload']['median_ms']:.2f} ms, password check "
            f"{out['password']['median_ms']:.1f} ms, errors {len(errors)}",
        )
        return out

    def inprocess(self, label: str) -> dict[str, Any]:
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        errors: list[str] = []
        for _ in range(int(self.sizes["rounds"])):
            self.one_round(runs, errors)
        return self.summarise(runs, errors, label)

    def http(self) -> dict[str, Any]:
        from django.db import connections

        from trusted_publishing.conf import tp_settings

        from .http_load import Server, run_load
        from .stats import cpu_times, process_tree_cpu

        sizes = self.sizes
        concurrency = int(sizes["http_concurrency"])
        warm = _bodies(self.idp.sign(100))
        bodies = _bodies(self.idp.sign(int(sizes["http_requests"])))
        connections.close_all()  # the workers open their own; ours must hold no locks
        log = Path(self.spec["log_dir"]) / "gunicorn-mint.log"
        out: dict[str, Any] = {
            "workers": int(sizes["http_workers"]),
            "threads_per_worker": int(sizes["http_threads"]),
            "concurrency": concurrency,
        }
        with Server(
            workers=out["workers"], threads=out["threads_per_worker"], log_path=log
        ) as server:
            out["warmup"] = _strip(
                run_load(server.port, warm, concurrency=concurrency, time_limit=30)
            )
            assert server.process is not None
            busy_0, total_0 = cpu_times()
            server_0, client_0 = process_tree_cpu(server.process.pid), time.process_time()
            load = run_load(
                server.port,
                bodies,
                concurrency=concurrency,
                time_limit=float(sizes["http_time_limit"]),
            )
            busy_1, total_1 = cpu_times()
            server_cpu = process_tree_cpu(server.process.pid) - server_0
            client_cpu = time.process_time() - client_0
            ok = max(1, load["ok"])
            load["cpu"] = {
                "machine_busy_pct": 100 * (busy_1 - busy_0) / max(1e-9, total_1 - total_0),
                "server_ms_per_mint": 1000 * server_cpu / ok,
                "client_ms_per_mint": 1000 * client_cpu / ok,
                "rest_ms_per_mint": 1000 * ((busy_1 - busy_0) - server_cpu - client_cpu) / ok,
            }
            out["load"] = load
            say(
                self.spec,
                f"HTTP: {load['throughput_per_s']:.0f} mints/s, p99 "
                f"{load['p99_ms']:.1f} ms, errors {load['errors']} of {load['requests']}",
            )
            self.result["idp"]["steady_before_rotation"] = self.idp.fetches()

            # Key rotation: the provider publishes a new key; every following token names it.
            # The refresh cooldown (5 s here) must have passed since the last fetch, as it has
            # for a real rotation.
            wait = (
                float(tp_settings.JWKS_REFRESH_COOLDOWN) + 1 - (time.monotonic() - self.last_fetch)
            )
            if wait > 0:
                time.sleep(wait)
            self.idp.rotate()
            self.idp.reset_counts()
            rotated = _bodies(self.idp.sign(int(sizes["rotation_requests"])))
            after = run_load(server.port, rotated, concurrency=concurrency, time_limit=60)
            self.last_fetch = time.monotonic()
            out["rotation"] = {**_strip(after), "fetches": self.idp.fetches()}
            self.idp.reset_counts()
            say(
                self.spec,
                f"rotation: {out['rotation']['fetches']} fetched for "
                f"{after['requests']} mints, errors {after['errors']}",
            )
        return out

    def history(self) -> None:
        from trusted_publishing.models import TrustedIssuer

        from .seed import seed_history

        sizes = self.sizes
        issuer = TrustedIssuer.objects.get(url=self.idp.url)
        seeded = seed_history(
            issuer.pk,
            issuer.url,
            publishers=int(sizes["history_publishers"]),
            tokens=int(sizes["history_tokens"]),
            events=int(sizes["history_events"]),
        )
        say(
            self.spec,
            f"history seeded in {seeded['seconds']:.0f} s: {seeded['events']:,} events, "
            f"{seeded['tokens']:,} tokens, {seeded['publishers']:,} publishers",
        )
        self.result["history_seed"] = seeded
        self.save()
        # Rounds alternate between the near-empty twin and the database with history, so a
        # change in the machine's load meanwhile affects both sides of the ratio alike.
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            "empty": defaultdict(list),
            "main": defaultdict(list),
        }
        errors: dict[str, list[str]] = {"empty": [], "main": []}
        for _ in range(int(sizes["rounds"])):
            for which in ("empty", "main"):
                self.use(which)
                self.one_round(runs[which], errors[which])
        self.use("empty")
        self.result["history_baseline"] = self.summarise(
            runs["empty"], errors["empty"], "near-empty twin, interleaved"
        )
        self.use("main")
        self.result["history"] = self.summarise(runs["main"], errors["main"], "with history")

    def purge(self) -> dict[str, Any]:
        from django.db import connections

        from trusted_publishing.models import TrustedIssuer

        from .http_load import Server, run_load, run_paced
        from .inprocess import row_counts
        from .seed import seed_purgeable

        sizes = self.sizes
        issuer = TrustedIssuer.objects.get(url=self.idp.url)
        seeded = seed_purgeable(
            issuer.url,
            replay_records=int(sizes["purge_replay_records"]),
            tokens=int(sizes["purge_tokens"]),
        )
        out: dict[str, Any] = {"seed": seeded, "rows_before": row_counts()}
        say(
            self.spec,
            f"purgeable rows seeded in {seeded['seconds']:.0f} s: "
            f"{seeded['replay_records']:,} replay records, {seeded['tokens']:,} tokens",
        )
        self.save()
        rate = float(sizes["purge_rate"])
        limit = float(sizes["purge_time_limit"])
        concurrency = int(sizes["http_concurrency"])
        quiet = _bodies(self.idp.sign(int(rate * float(sizes["purge_quiet_seconds"])) + 1))
        during = _bodies(self.idp.sign(int(rate * limit) + 1))
        connections.close_all()
        log = Path(self.spec["log_dir"]) / "gunicorn-purge.log"
        probe_out = Path(self.spec["log_dir"]) / "purge-probe.json"
        probe_out.unlink(missing_ok=True)
        with Server(
            workers=int(sizes["http_workers"]), threads=int(sizes["http_threads"]), log_path=log
        ) as server:
            run_load(
                server.port, _bodies(self.idp.sign(50)), concurrency=concurrency, time_limit=30
            )
            out["without_purge"] = _strip(
                run_paced(
                    server.port,
                    quiet,
                    rate=rate,
                    concurrency=concurrency,
                    stop=lambda: False,
                    time_limit=float(sizes["purge_quiet_seconds"]),
                )
            )
            env = {**os.environ, "PYTHONPATH": str(ROOT), "TP_BENCH_APP_NAME": "tp-bench-purge"}
            sampler = WaitSampler(self.spec["database_url"])
            with (Path(self.spec["log_dir"]) / "purge.log").open("wb") as purge_log:
                started = time.perf_counter()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.purge_probe", str(probe_out)],
                    cwd=ROOT,
                    env=env,
                    stdout=purge_log,
                    stderr=purge_log,
                )
                sampler.start()
                try:
                    load = run_paced(
                        server.port,
                        during,
                        rate=rate,
                        concurrency=concurrency,
                        stop=lambda: proc.poll() is not None,
                        time_limit=limit,
                    )
                finally:
                    sampler.stop()
                    if proc.poll() is None:
                        proc.terminate()
                        out["purge_stopped_after_s"] = time.perf_counter() - started
                    proc.wait(timeout=60)
            out["purge_wall_seconds"] = time.perf_counter() - started
            out["during_purge"] = _strip(load)
            out["server_waits_during_purge"] = sampler.summary()
        out["probe"] = (
            json.loads(probe_out.read_text())
            if probe_out.exists()
            else {"error": f"the purge process exited {proc.returncode} without a report"}
        )
        out["during_purge"].update(_inside_transactions(load, out["probe"].pop("spans", [])))
        out["during_purge"]["timeline"] = _timeline(load["samples"])
        out["rows_after"] = row_counts()
        say(
            self.spec,
            f"purge: {out['purge_wall_seconds']:.0f} s, mint p99 during it "
            f"{load['p99_ms']:.0f} ms ({load['requests']} mints, {load['errors']} errors); "
            f"largest transaction {out['probe'].get('max_rows_per_transaction', '?')} rows",
        )
        return out


class WaitSampler:
    """What the server's database sessions are doing, ten times a second (PostgreSQL): active
    on CPU, waiting for a lock (and whether the purge holds it), for the WAL, for I/O."""

    def __init__(self, database_url: str) -> None:
        import threading

        self.url = database_url
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        sql = (
            "SELECT a.state, coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU'), "
            "EXISTS (SELECT 1 FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(a.pid))"
            " AND b.application_name = 'tp-bench-purge') "
            "FROM pg_stat_activity a WHERE a.datname = current_database() "
            "AND a.application_name = 'tp-bench-server' AND a.state = 'active'"
        )
        lsn = "SELECT pg_current_wal_lsn()"
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                first = conn.execute(lsn).fetchone()[0]
                while not self._halt.wait(0.1):
                    self.samples += 1
                    for _state, wait, by_purge in conn.execute(sql).fetchall():
                        key = wait + (" (held by the purge)" if by_purge else "")
                        self.counts[key] = self.counts.get(key, 0) + 1
                # WAL of the whole server meanwhile (the purge, the mints, anything else).
                self.wal_bytes = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [str(first)]
                ).fetchone()[0]
        except Exception as exc:  # information only: never fail the run for it
            self.counts[f"sampler error: {type(exc).__name__}"] = 1

    def summary(self) -> dict[str, Any]:
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:8]
        return {
            "samples": self.samples,
            "active_server_sessions_by_wait": dict(top),
            "wal_bytes": int(getattr(self, "wal_bytes", 0) or 0),
        }


def _inside_transactions(load: dict[str, Any], spans: list[list[float]]) -> dict[str, Any]:
    """Latency of mints due while a purge transaction was open vs due between them."""
    import bisect

    from .stats import percentile

    if not spans:
        return {}
    spans = sorted(spans)
    starts = [s[0] for s in spans]
    inside, outside = [], []
    for due, latency, _ in load["samples"]:
        t = load["started_epoch"] + due
        k = bisect.bisect_right(starts, t) - 1
        (inside if k >= 0 and t <= spans[k][1] else outside).append(latency)
    return {
        "due_inside_purge_transaction": {
            "n": len(inside),
            "p50_ms": percentile(inside, 50),
            "p99_ms": percentile(inside, 99),
        },
        "due_between_purge_transactions": {
            "n": len(outside),
            "p50_ms": percentile(outside, 50),
            "p99_ms": percentile(outside, 99),
        },
    }


def _timeline(samples: list[tuple[float, float, str]]) -> list[list[float]]:
    """Per second of the load: [second, requests, p50 ms, max ms]."""
    from .stats import percentile

    seconds: dict[int, list[float]] = defaultdict(list)
    for due, latency, _ in samples:
        seconds[int(due)].append(latency)
    return [
        [s, len(v), round(percentile(v, 50), 1), round(max(v), 1)]
        for s, v in sorted(seconds.items())
    ]


class _Null:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _bodies(tokens: list[str]) -> list[bytes]:
    return [json.dumps({"token": t}).encode() for t in tokens]


def _strip(load: dict[str, Any]) -> dict[str, Any]:
    """A load summary without its raw samples."""
    return {k: v for k, v in load.items() if k != "samples"}


def _forget_cache_keys(prefix: str) -> None:
    """Leave a shared Redis as we found it: drop this run's keys (some never expire)."""
    from django.core.cache import cache

    client_of = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client_of is None:  # not Redis: the file cache lives in the run's temporary directory
        return
    client = client_of(write=True)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def main() -> None:
    spec = json.loads(sys.argv[1])
    run = Run(spec, Path(sys.argv[2]))
    try:
        run.run()
    except BaseException as exc:
        run.result["error"] = f"{type(exc).__name__}: {exc}"[:500]
        run.result["traceback"] = traceback.format_exc()[-4000:]
        run.save()
        print(run.result["traceback"], file=sys.stderr, flush=True)
        sys.exit(1)
    run.save()


if __name__ == "__main__":
    main()
