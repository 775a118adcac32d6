"""Timing helpers: per-call samples, summarised by median and tail percentiles."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of already-collected samples (q in 0..100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarise(samples_ms: list[float]) -> dict[str, Any]:
    cpu_ms = getattr(samples_ms, "cpu_ms", float("nan"))
    return {
        "cpu_ms_per_call": cpu_ms / len(samples_ms) if samples_ms else float("nan"),
        "n": len(samples_ms),
        "median_ms": statistics.median(samples_ms) if samples_ms else float("nan"),
        "mean_ms": statistics.fmean(samples_ms) if samples_ms else float("nan"),
        "p90_ms": percentile(samples_ms, 90),
        "p99_ms": percentile(samples_ms, 99),
        "min_ms": min(samples_ms) if samples_ms else float("nan"),
        "max_ms": max(samples_ms) if samples_ms else float("nan"),
    }


class Samples(list[float]):
    """Wall-clock ms per call, plus the process CPU time the whole loop used."""

    cpu_ms: float = float("nan")


def time_calls(func: Callable[[Any], object], args: Iterable[Any], *, time_limit: float) -> Samples:
    """Call ``func(arg)`` for each arg (bounded by ``time_limit`` seconds); ms per call.

    The garbage collector is collected before, not disabled: a real process pays for it too.
    CPU time (this process only) is recorded too: on a busy machine wall-clock medians include
    waiting for a CPU, CPU time does not.
    """
    gc.collect()
    samples = Samples()
    clock = time.perf_counter
    deadline = clock() + time_limit
    cpu_started = time.process_time()
    for arg in args:
        started = clock()
        func(arg)
        samples.append((clock() - started) * 1000)
        if started > deadline:
            break
    samples.cpu_ms = (time.process_time() - cpu_started) * 1000
    return samples


def cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [float(x) for x in stat.readline().split()[1:]]
    except OSError:
        return float("nan"), float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    total = sum(fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live children."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            pids += [int(p) for p in children.read().split()]
    except OSError:
        pass
    used = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            used += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return used


def best_round(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the lowest median (as timeit takes the best run), with every round's
    median kept for the record."""
    best = min(summaries, key=lambda s: s["median_ms"])
    return {**best, "round_medians_ms": [s["median_ms"] for s in summaries]}
