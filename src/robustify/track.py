"""MLflow side channel. The JSON record is the output of record; MLflow failing never fails a job.

Default store: sqlite:///mlflow.db at the repo root (MLFLOW_TRACKING_URI or params tracking.uri
override). Every run is tagged with the record's run block (each wildcard, git sha, params hash) and a
`record_path`, which `sync` uses to back-fill runs missing from the store without duplicating any.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///mlflow.db"


def tracking_uri(configured: Optional[str] = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_URI


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _numeric(d: dict) -> dict[str, float]:
    return {k: float(v) for k, v in flatten(d).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _mlflow_safe(name: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / ; anything else becomes _
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)


def log_record(record: dict, record_path: str | Path, uri: Optional[str] = None, experiment: str = "robustify",
               params: Optional[dict] = None, artifacts: tuple = (), retries: int = 5) -> Optional[str]:
    """Log one record as one MLflow run; returns the run id, or None when MLflow is unavailable."""
    uri = tracking_uri(uri)
    for attempt in range(retries):
        try:
            with _store_lock(uri):
                return _log(record, str(record_path), uri, experiment, params or {}, artifacts)
        except Exception as e:  # noqa: BLE001 - MLflow being down must not fail the job
            if attempt + 1 < retries and _contended(e):
                time.sleep(0.5 * 2**attempt * random.uniform(0.5, 1.5))  # jitter: parallel jobs must not retry in step
                continue
            log.warning("MLflow logging skipped (%s: %s); back-fill later with `robustify sync-mlflow`",
                        type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
            return None
    return None


# store contention (retried with jittered backoff), as opposed to a down server (given up at once)
_CONTENTION = ("locked", "duplicate column", "already exists", "unique constraint", "deadlock",
               "could not serialize", "internal_error", "temporarily unavailable")


def _contended(e: Exception) -> bool:
    return any(m in str(e).lower() for m in _CONTENTION)


@contextlib.contextmanager
def _store_lock(uri: str):
    """sqlite stores: one writer at a time across processes (an exclusive lock file next to the db).

    sqlite allows one writer anyway, and MLflow creates/migrates the schema on a store's first use,
    which parallel jobs would otherwise race ("duplicate column", "database is locked"). Server
    stores (http://, postgresql://) take no lock: the server and PostgreSQL handle concurrency.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(uri[len("sqlite:///"):].split("?")[0])
    if not db.parent.is_dir():  # issue 11: a mistyped store path must not create directories anywhere (root can)
        raise FileNotFoundError(f"MLflow store directory {db.parent} does not exist; create it or fix MLFLOW_TRACKING_URI")
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _log(record: dict, record_path: str, uri: str, experiment: str, params: dict, artifacts: tuple) -> str:
    # a down tracking server must cost a job seconds, not MLflow's default minutes of HTTP retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        try:
            exp_id = client.create_experiment(experiment)
        except Exception:  # another job created it first
            exp_id = client.get_experiment_by_name(experiment).experiment_id
    else:
        exp_id = exp.experiment_id
    run_block = record["run"]
    tags = {f"run.{k}": str(v) for k, v in run_block.items() if v is not None}
    tags["record_path"] = record_path
    tags["record_digest"] = record_digest(record)
    name = "/".join(str(run_block[k]) for k in ("stage", "method", "student", "teacher", "scheme", "variant", "seed") if run_block.get(k) is not None)
    run = client.create_run(exp_id, tags=tags, run_name=name)
    rid = run.info.run_id
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    metrics = [Metric(_mlflow_safe(k), v, now, 0) for k, v in _numeric({"metrics": record["metrics"], "timing": record.get("timing") or {}}).items()]
    if record.get("flops") is not None:
        metrics.append(Metric("flops", float(record["flops"]), now, 0))
    flat_params = [Param(_mlflow_safe(k)[:250], str(v)[:500]) for k, v in flatten(params).items()]
    for i in range(0, max(len(metrics), len(flat_params)), 100):
        client.log_batch(rid, metrics=metrics[i:i + 100], params=flat_params[i:i + 100])
    client.log_artifact(rid, record_path)
    for a in artifacts:
        if Path(a).is_file():
            client.log_artifact(rid, str(a))
    client.set_terminated(rid)
    return rid


def sync(metrics_dir: str | Path, uri: Optional[str] = None, experiment: str = "robustify") -> tuple[int, int]:
    """Log every record under `metrics_dir` whose (path, git sha, params hash, metrics) MLflow lacks."""
    import mlflow

    from .records import iter_records

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(uri))
    exp = client.get_experiment_by_name(experiment)
    seen: set[str] = set()
    if exp is not None:
        for run in client.search_runs([exp.experiment_id], max_results=50_000):
            seen.add(run.data.tags.get("record_digest", ""))
    added = present = 0
    for path, rec in iter_records(metrics_dir):
        if record_digest(rec) in seen:
            present += 1
            continue
        if log_record(rec, path, uri, experiment) is None:
            raise RuntimeError("MLflow is still unreachable")
        added += 1
    return added, present


def record_digest(record: dict) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
