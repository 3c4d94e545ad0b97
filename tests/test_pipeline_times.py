"""Run accounting: every finished command logs its exact CPU time, and benchmarks/pipeline_times.py
prefers that line to Snakemake's sampled cpu_time (which misses up to 30 s per job)."""

from __future__ import annotations

import importlib.util
import json
import logging
import resource
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pipeline_times():
    spec = importlib.util.spec_from_file_location("pipeline_times", ROOT / "benchmarks" / "pipeline_times.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _process_cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def test_finished_command_logs_its_cpu_time(cli, caplog):
    # The line is the whole process's CPU (a Snakemake job is one process: imports count). In-process here,
    # that includes everything pytest ran before, so bracket it rather than bound it (CI's 716 s broke a bound).
    caplog.set_level(logging.INFO, logger="robustify")
    before = _process_cpu_s()
    code, _, _ = cli("check-config", "--params", ROOT / "params.yaml")
    after = _process_cpu_s()
    assert code == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resources:")]
    assert len(lines) == 1
    cpu = _pipeline_times().RESOURCES.search(lines[0])
    assert cpu and float(cpu.group(2)) > 0
    assert before - 0.01 <= float(cpu.group(1)) <= after + 0.01


def test_failed_command_logs_only_its_error(cli, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="robustify")
    code, _, err = cli("check-config", "--params", tmp_path / "nope.yaml")
    assert code != 0 and "error:" in err
    assert not [r for r in caplog.records if r.getMessage().startswith("resources:")]


def _job(root: Path, rel: str, wall: float, sampled_cpu: float, log_text: str | None) -> None:
    tsv = root / "logs" / "benchmarks" / f"{rel}.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                   f"{wall}\t0:00:{int(wall)}\t900\t1\t1\t1\t0\t0\t50\t{sampled_cpu}\n")
    if log_text is not None:
        log = root / "logs" / f"{rel}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(log_text)


def test_pipeline_times_prefers_the_exact_cpu_line(tmp_path, monkeypatch, capsys):
    pt = _pipeline_times()
    # a 75 s job whose last Snakemake sample was at 45 s; its log has the exact line (twice: a retry)
    _job(tmp_path, "evaluate/students/a", 75.0, 44.0,
         "x\nrobustify: resources: cpu_s=10.00 wall_s=9.0 max_rss_mb=1\n...\nresources: cpu_s=73.50 wall_s=74.9 max_rss_mb=900\n")
    _job(tmp_path, "evaluate/students/b", 30.0, 15.0, "no resources line: a run from before it existed\n")
    _job(tmp_path, "teachers/t", 100.0, 95.0, None)
    jobs = pt.collect(tmp_path)
    got = dict(zip(jobs["job"], zip(jobs["cpu_s"], jobs["cpu_exact"])))
    assert got == {"a": (73.5, True), "b": (15.0, False), "t": (95.0, False)}
    out = tmp_path / "pt.json"
    monkeypatch.setattr(sys, "argv", ["pipeline_times.py", "--root", str(tmp_path), "--wall", "100", "--cores", "2",
                                      "--out", str(out)])
    pt.main()
    total = json.loads(out.read_text())["total"]
    assert total["job_cpu_s"] == pytest.approx(183.5) and total["cpu_exact_jobs"] == 1
    assert total["cores_busy_pct"] == pytest.approx(91.75)
    assert "1 jobs' CPU exact" in capsys.readouterr().out
