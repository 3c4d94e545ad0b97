"""MLflow side channel: round trip through search_runs, failures never fail a job, sync back-fills."""

from __future__ import annotations

import pandas as pd
import pytest

from robustify import track
from robustify.records import make_record, write_record
from robustify.report import runs as R
from robustify.report.tables import main_table


def _record(method: str, seed: int, clean: float) -> dict:
    return make_record("baselines", method=method, student="resnet56_cifar", seed=seed, params_hash="abc",
                       metrics={"clean": clean, "nested": {"x": 1.5}}, timing={"train_s": 2.0, "images_seen": 4})


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_record_has_run_block_and_rate():
    rec = _record("original", 0, 93.4)
    assert set(rec["run"]) >= {"stage", "student", "teacher", "scheme", "method", "variant", "seed", "git_sha", "params_hash"}
    assert rec["timing"]["s_per_image"] == 0.5


def test_log_then_search_runs_round_trip(store):
    paths = []
    for seed, clean in [(0, 93.0), (1, 94.0)]:
        p = write_record(store / "metrics" / "baselines" / f"r{seed}.json", _record("original", seed, clean))
        assert track.log_record(_record("original", seed, clean), p, experiment="t") is not None
        paths.append(p)
    a = R.from_records(store / "metrics")
    b = R.from_mlflow(experiment="t")
    cols = sorted(set(a.columns) & set(b.columns))
    assert {"metrics.clean", "metrics.nested.x", "run.seed", "run.git_sha"} <= set(cols)
    pd.testing.assert_frame_equal(a[cols], b[cols])
    pd.testing.assert_frame_equal(main_table(a), main_table(b))
    assert main_table(a)["clean"].tolist() == [93.5]


def test_unreachable_mlflow_does_not_fail(tmp_path, caplog):
    p = write_record(tmp_path / "r.json", _record("original", 0, 1.0))
    rid = track.log_record(_record("original", 0, 1.0), p, uri="http://127.0.0.1:9/", retries=1)
    assert rid is None
    assert "back-fill later with `robustify sync-mlflow`" in caplog.text


def test_sync_backfills_without_duplicates(store):
    metrics = store / "metrics"
    for seed in range(3):
        write_record(metrics / f"r{seed}.json", _record("original", seed, 90.0 + seed))
    track.log_record(_record("original", 0, 90.0), metrics / "r0.json", experiment="t")
    assert track.sync(metrics, experiment="t") == (2, 1)
    assert track.sync(metrics, experiment="t") == (0, 3)
    assert len(R.from_mlflow(experiment="t")) == 3
