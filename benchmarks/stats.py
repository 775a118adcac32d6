"""Timing helpers: per-call samples, summarised by median and tail percentiles."""

from __future__ import annotations

import gc
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
    return {
        "n": len(samples_ms),
        "median_ms": statistics.median(samples_ms) if samples_ms else float("nan"),
        "mean_ms": statistics.fmean(samples_ms) if samples_ms else float("nan"),
        "p90_ms": percentile(samples_ms, 90),
        "p99_ms": percentile(samples_ms, 99),
        "min_ms": min(samples_ms) if samples_ms else float("nan"),
    }


def time_calls(
    func: Callable[[Any], object], args: Iterable[Any], *, time_limit: float
) -> list[float]:
    """Call ``func(arg)`` for each arg (bounded by ``time_limit`` seconds); ms per call.

    The garbage collector is collected before, not disabled: a real process pays for it too.
    """
    gc.collect()
    samples: list[float] = []
    clock = time.perf_counter
    deadline = clock() + time_limit
    for arg in args:
        started = clock()
        func(arg)
        samples.append((clock() - started) * 1000)
        if started > deadline:
            break
    return samples
