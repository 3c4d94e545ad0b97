"""Timing helper shared by the benchmarks (run as scripts: this folder is on sys.path)."""

from __future__ import annotations

import statistics
import time


def median_time(fn, steps: int) -> float:
    """Median wall seconds of `steps` calls of `fn`, after one warm-up call."""
    fn()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
