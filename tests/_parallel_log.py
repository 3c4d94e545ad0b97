"""N processes log one record each via robustify.track.log_record, all at once (tests/test_ops.py).

    python tests/_parallel_log.py URI N WORKDIR   → prints {"ok": k, "failed": N-k, "seconds": s}
Processes are forked after MLflow is imported (16 cold Python starts would dominate on 2 cores) and
released together by a barrier, so their first requests really collide.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import mlflow  # noqa: F401  (imported before forking)

from robustify.track import log_record


def job(i: int, uri: str, workdir: str, barrier, results) -> None:
    record = {"run": {"stage": "ops", "method": "parallel", "student": "s", "teacher": "t", "seed": i},
              "metrics": {"acc": i / 16}, "timing": {"train_s": 0.1 * i}}
    path = Path(workdir) / f"record_{i:02d}.json"
    path.write_text(json.dumps(record))
    barrier.wait()
    results.put((i, log_record(record, path, uri=uri, experiment="ops-parallel")))


if __name__ == "__main__":
    uri, n, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=job, args=(i, uri, workdir, barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    ok = sum(rid is not None for _, rid in got)
    print(json.dumps({"ok": ok, "failed": n - ok, "seconds": round(time.perf_counter() - t0, 1)}))
