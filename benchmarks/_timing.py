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


def interleaved(fns: dict, repeats: int, reference: str) -> tuple[dict, dict]:
    """Median seconds per variant, timed in alternation (each repeat calls every variant once, after one
    warm-up call each) so that load from other processes hits every variant alike; also the median of
    the per-repeat ratios of each variant's time to `reference`'s."""
    for fn in fns.values():
        fn()
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    ratios = {k: statistics.median(t / r for t, r in zip(times[k], times[reference])) for k in fns if k != reference}
    return {k: statistics.median(v) for k, v in times.items()}, ratios
