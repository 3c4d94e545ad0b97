"""Records of truth (DESIGN.md §5): one JSON per job under results/metrics/<stage>/…json.

`{"run": {stage, student, teacher, scheme, method, variant, seed, git_sha, params_hash, device},
  "metrics": {...}, "timing": {train_s, images_seen, s_per_image}, "flops": ..., "artifacts": {...}}`
Tables are built from these files; MLflow receives the same content as a side channel.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import DataError
from .io import write_json

RUN_KEYS = ("stage", "student", "teacher", "scheme", "method", "variant", "seed", "git_sha", "params_hash", "device")


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """Commit of the code that ran ('unknown' outside a checkout; '+dirty' when uncommitted changes exist)."""
    try:
        root = Path(__file__).resolve().parents[2]
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def make_record(stage: str, *, metrics: dict, params_hash: str, seed: Optional[int] = None,
                timing: Optional[dict] = None, flops: Optional[float] = None, artifacts: Optional[dict] = None,
                **run: Any) -> dict:
    unknown = set(run) - set(RUN_KEYS)
    if unknown:
        raise TypeError(f"unknown run keys {sorted(unknown)}; allowed: {RUN_KEYS}")
    run_block = {k: None for k in RUN_KEYS}
    run_block.update(run, stage=stage, seed=seed, git_sha=git_sha(), params_hash=params_hash)
    if run_block["device"] is None:  # where the timings were taken (cpu / cuda:N): compare like with like
        from .device import current

        run_block["device"] = str(current())
    timing = dict(timing or {})
    if timing.get("train_s") is not None and timing.get("images_seen"):
        timing.setdefault("s_per_image", timing["train_s"] / timing["images_seen"])
    return {"run": run_block, "metrics": metrics, "timing": timing, "flops": flops, "artifacts": artifacts or {}}


def write_record(path: str | Path, record: dict) -> Path:
    path = Path(path)
    write_json(path, record)
    return path


def read_record(path: str | Path) -> dict:
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable record ({type(e).__name__}); delete it and rerun its stage") from None
    if not isinstance(rec, dict) or "run" not in rec or "metrics" not in rec:
        raise DataError(f"{path}: not a robustify record (needs 'run' and 'metrics'); delete it and rerun its stage")
    return rec


def iter_records(root: str | Path = "results/metrics", stage: Optional[str] = None) -> Iterable[tuple[Path, dict]]:
    root = Path(root)
    base = root / stage if stage else root
    for path in sorted(base.rglob("*.json")):
        yield path, read_record(path)
