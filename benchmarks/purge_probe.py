"""Run ``manage.py trusted_publishing purge --json`` and record how it writes.

``python -m benchmarks.purge_probe OUTPUT_JSON [purge options]`` runs the real management
command, in its own process with the benchmark's settings (as cron would run it next to the
serving workers), with a Django ``execute_wrapper`` that records every statement (verb, table,
rows affected, duration; never parameters) and a hook on the connection's commit, so the report
can say how many transactions the purge used, how many rows the largest one changed and how long
it held its locks. A purge "in bounded batches" changes at most a few thousand rows per
transaction; one transaction over everything holds its row locks (SQLite: the database's write
lock) until the end.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

_WRITES = ("INSERT", "UPDATE", "DELETE")


def _shape(sql: str) -> str:
    from .inprocess import _short

    return _short(sql)


def run(argv: list[str]) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    statements: list[dict[str, Any]] = []
    transactions: list[dict[str, Any]] = []
    open_tx: dict[str, Any] = {}

    def close_tx(outcome: str) -> None:
        if open_tx:
            now = time.perf_counter()
            transactions.append(
                {
                    "ms": (now - open_tx["start"]) * 1000,
                    "rows": open_tx["rows"],
                    "statements": open_tx["statements"],
                    "outcome": outcome,
                    # wall-clock span, to tell mints due inside a purge transaction from others
                    "span": [time.time() - (now - open_tx["start"]), time.time()],
                }
            )
            open_tx.clear()

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        in_tx = not connection.get_autocommit()
        started = time.perf_counter()
        if in_tx and not open_tx:
            open_tx.update(start=started, rows=0, statements=0)
        try:
            return execute(sql, params, many, context)
        finally:
            ms = (time.perf_counter() - started) * 1000
            shape = _shape(sql)
            rows = 0
            if shape.startswith(_WRITES):
                try:
                    rows = max(0, int(context["cursor"].rowcount))
                except Exception:
                    rows = 0
            statements.append({"sql": shape, "rows": rows, "ms": round(ms, 3), "in_tx": in_tx})
            if in_tx:
                open_tx["rows"] += rows
                open_tx["statements"] += 1
            else:
                transactions.append(
                    {
                        "ms": ms,
                        "rows": rows,
                        "statements": 1,
                        "outcome": "auto",
                        "span": [time.time() - ms / 1000, time.time()],
                    }
                )

    real_commit, real_rollback = connection.commit, connection.rollback

    def commit() -> None:
        real_commit()
        close_tx("commit")

    def rollback() -> None:
        real_rollback()
        close_tx("rollback")

    connection.commit, connection.rollback = commit, rollback  # type: ignore[method-assign]
    out = io.StringIO()
    started = time.perf_counter()
    error = ""
    try:
        with connection.execute_wrapper(wrapper):
            call_command("trusted_publishing", "purge", "--json", *argv, stdout=out)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    seconds = time.perf_counter() - started
    close_tx("open at exit")
    try:
        command_output: Any = json.loads(out.getvalue())
    except ValueError:
        command_output = out.getvalue()[-2000:]
    writes = [s for s in statements if s["sql"].startswith(_WRITES)]
    by_shape: dict[str, dict[str, float]] = {}
    for s in statements:
        entry = by_shape.setdefault(s["sql"], {"count": 0, "rows": 0, "ms": 0.0})
        entry["count"] += 1
        entry["rows"] += s["rows"]
        entry["ms"] += s["ms"]
    return {
        "error": error,
        "seconds": seconds,
        "command_output": command_output,
        "statements": len(statements),
        "write_statements": len(writes),
        "max_rows_per_statement": max((s["rows"] for s in writes), default=0),
        "transactions": len(transactions),
        "max_rows_per_transaction": max((t["rows"] for t in transactions), default=0),
        "longest_transaction_ms": max((t["ms"] for t in transactions), default=0.0),
        "by_statement": dict(sorted(by_shape.items(), key=lambda kv: -kv[1]["ms"])[:12]),
        "spans": [t["span"] for t in transactions if t["rows"]],
    }


def main() -> None:
    output = Path(sys.argv[1])
    output.write_text(json.dumps(run(sys.argv[2:]), indent=2, default=str))


if __name__ == "__main__":
    main()
