"""One database backend's measurements, run in its own process (Django settings are per
process): ``python -m benchmarks.backend SPEC_JSON OUTPUT_JSON``.

The driver (``python -m benchmarks``) starts one of these per database and merges the results.
The spec names the database URL, the cache URL and prefix, the phases and their sizes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _setup_django(spec: dict[str, Any]) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ["TP_BENCH_DATABASE_URL"] = spec["database_url"]
    os.environ["TP_BENCH_CACHE_URL"] = spec["cache_url"]
    os.environ["TP_BENCH_CACHE_PREFIX"] = spec["cache_prefix"]
    import django

    django.setup()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    _setup_django(spec)
    from django.core.management import call_command
    from django.db import connection

    import trusted_publishing.keys as keys_module
    from trusted_publishing.models import GitHubPublisher, KeySource, TrustedIssuer

    from . import http_load, inprocess
    from .idp import CountingIdP
    from .seed import seed
    from .stats import best_round

    sizes = spec["sizes"]
    phases = spec["phases"]
    limit = float(sizes["phase_time_limit"])
    result: dict[str, Any] = {
        "backend": spec["name"],
        "vendor": connection.vendor,
        "cache": spec["cache_url"].split(":", 1)[0],
    }
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            result["sqlite_journal_mode"] = cursor.fetchone()[0]
    result["migrate_seconds"] = time.perf_counter() - started
    result["commit_probe_ms"] = _commit_probe()

    # Count every key fetch, in this process (patched) and at the identity provider (HTTP).
    fetches = {"calls": 0}
    real_fetch = keys_module.fetch_issuer_keys

    def counting_fetch(issuer_url: str) -> dict[str, dict[str, Any]]:
        fetches["calls"] += 1
        return real_fetch(issuer_url)

    keys_module.fetch_issuer_keys = counting_fetch

    with CountingIdP() as idp:
        issuer = idp.issuer
        row = TrustedIssuer.objects.create(
            url=issuer.url, provider="github", name="benchmark", key_source=KeySource.DISCOVERY
        )
        publisher = GitHubPublisher.objects.create(
            issuer=row,
            repository_owner="acme",
            repository_name="widgets",
            workflow_filename="release.yml",
        )
        publisher.add_projects([inprocess.PROJECT])

        # Cold start: the first mint fetches the issuer's keys (discovery + JWKS).
        warm = inprocess.sign_tokens(issuer, 60)
        _, errors, _ = inprocess.mint(warm, time_limit=limit)
        if errors:
            raise RuntimeError(f"{errors} warm-up mint(s) failed")
        result["idp"] = {"cold_fetch_calls": fetches["calls"], "cold_http_requests": idp.requests}
        fetches["calls"] = 0
        idp.requests = 0

        def measure_inprocess(label: str) -> dict[str, Any]:
            # Interleaved rounds, each figure taken from its best (lowest-median) round: the
            # baseline and the app are measured minutes apart at most, and a burst of load from
            # elsewhere on the machine spoils one round, not the comparison.
            rounds = int(sizes["rounds"])
            per_round = max(1, int(sizes["mint_iterations"]) // rounds)
            upload_n = max(1, int(sizes["upload_iterations"]) // rounds)
            first_n = max(1, int(sizes["first_use_tokens"]) // rounds)
            runs: dict[str, list[dict[str, Any]]] = {}
            mint_errors = 0
            minted: list[str] = []
            for _ in range(rounds):
                tokens = inprocess.sign_tokens(issuer, per_round)
                measured = {
                    "baseline": inprocess.baseline(issuer, tokens, limit),
                    "cache_get": inprocess.cache_round_trip(per_round, limit),
                    "noop_client": inprocess.client_floor("/_bench/noop", tokens, limit),
                    "noop_app_client": inprocess.client_floor("/_bench/noop-app", tokens, limit),
                }
                summary, errors, fresh = inprocess.mint(tokens, limit)
                mint_errors += errors
                measured["mint"] = summary
                measured["upload_auth"], measured["upload_auth_first_use"] = inprocess.upload_auth(
                    fresh[: first_n + 1], limit, iterations=upload_n
                )
                minted += fresh[first_n + 1 :]
                for key, value in measured.items():
                    runs.setdefault(key, []).append(value)
            out: dict[str, Any] = {key: best_round(values) for key, values in runs.items()}
            out["mint"]["errors"] = mint_errors
            out["mint_queries"] = inprocess.mint_queries(inprocess.sign_tokens(issuer, 5))
            out["upload_queries"] = inprocess.upload_queries(minted[-1])
            out["upload_queries_first_use"] = inprocess.upload_queries_first_use(minted[-2])
            print(
                f"  [{spec['name']}] in-process ({label}): mint median "
                f"{out['mint']['median_ms']:.3f} ms, upload auth median "
                f"{out['upload_auth']['median_ms']:.3f} ms",
                file=sys.stderr,
                flush=True,
            )
            return out

        if "inprocess" in phases:
            result["inprocess"] = measure_inprocess("near-empty")
            result["inprocess"]["rows_before"] = _row_counts()

        if "http" in phases:
            result["http"] = _http_phase(spec, issuer, inprocess, http_load)

        if "scale" in phases:
            seeded = seed(row, int(sizes["scale_rows"]))
            print(
                f"  [{spec['name']}] seeded {seeded['rows']} rows per table in "
                f"{seeded['seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            result["scale"] = {"seed": seeded, "rows": _row_counts()}
            result["scale"]["inprocess"] = measure_inprocess(f"{seeded['rows']} rows")

        result["idp"]["steady_fetch_calls"] = fetches["calls"]
        result["idp"]["steady_http_requests"] = idp.requests
    _forget_cache_keys(spec["cache_prefix"])
    result["seconds"] = time.perf_counter() - started
    return result


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


def _commit_probe(n: int = 100) -> float:
    """Median of a one-row autocommit INSERT through Django: what one commit costs here (a
    real table: temporary ones skip the write-ahead log on both backends)."""
    import statistics

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE tp_bench_probe (x INTEGER)")
        samples = []
        for i in range(n):
            begun = time.perf_counter()
            cursor.execute("INSERT INTO tp_bench_probe (x) VALUES (%s)", [i])
            samples.append((time.perf_counter() - begun) * 1000)
        cursor.execute("DROP TABLE tp_bench_probe")
    return statistics.median(samples)


def _row_counts() -> dict[str, int]:
    from trusted_publishing.models import (
        AuditEvent,
        IssuedToken,
        Publisher,
        PublisherProject,
        UsedIdentityToken,
    )

    return {
        model.__name__: model.objects.count()
        for model in (Publisher, PublisherProject, IssuedToken, UsedIdentityToken, AuditEvent)
    }


def _http_phase(spec: dict[str, Any], issuer: Any, inprocess: Any, http_load: Any) -> dict:
    from django.db import connections

    from .stats import cpu_times, process_tree_cpu

    sizes = spec["sizes"]
    warmup = [inprocess.mint_body(t).encode() for t in inprocess.sign_tokens(issuer, 100)]
    bodies = [
        inprocess.mint_body(t).encode()
        for t in inprocess.sign_tokens(issuer, int(sizes["http_requests"]))
    ]
    # The server's workers open their own connections; ours must not hold SQLite locks.
    connections.close_all()
    log = Path(spec["log_dir"]) / f"gunicorn-{spec['name']}.log"
    with http_load.Server(
        workers=int(sizes["http_workers"]), threads=int(sizes["http_threads"]), log_path=log
    ) as server:
        concurrency = int(sizes["http_concurrency"])
        warm = http_load.run_load(server.port, warmup, concurrency=concurrency, time_limit=30)
        if warm["errors"]:
            raise RuntimeError(f"HTTP warm-up had errors: {warm['statuses']}")
        assert server.process is not None
        busy_0, total_0 = cpu_times()
        server_0, client_0 = process_tree_cpu(server.process.pid), time.process_time()
        out = http_load.run_load(
            server.port,
            bodies,
            concurrency=concurrency,
            time_limit=float(sizes["http_time_limit"]),
        )
        busy_1, total_1 = cpu_times()
        server_cpu = process_tree_cpu(server.process.pid) - server_0
        client_cpu = time.process_time() - client_0
    # Where the machine's CPU went during the load: gunicorn, the load generator, and the rest
    # (database server, Redis, and anything else running on this machine).
    ok = max(1, out["ok"])
    out["cpu"] = {
        "machine_busy_pct": 100 * (busy_1 - busy_0) / max(1e-9, total_1 - total_0),
        "server_ms_per_mint": 1000 * server_cpu / ok,
        "client_ms_per_mint": 1000 * client_cpu / ok,
        "rest_ms_per_mint": 1000 * ((busy_1 - busy_0) - server_cpu - client_cpu) / ok,
    }
    out["workers"] = int(sizes["http_workers"])
    out["threads_per_worker"] = int(sizes["http_threads"])
    print(
        f"  [{spec['name']}] HTTP: {out['throughput_per_s']:.0f} mints/s, p50 "
        f"{out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms, errors {out['errors']}; CPU "
        f"{out['cpu']['machine_busy_pct']:.0f}% busy, server {out['cpu']['server_ms_per_mint']:.2f}"
        f" ms/mint",
        file=sys.stderr,
        flush=True,
    )
    return out


def main() -> None:
    spec = json.loads(sys.argv[1])
    output = Path(sys.argv[2])
    output.write_text(json.dumps(run(spec), indent=2, default=str))


if __name__ == "__main__":
    main()
