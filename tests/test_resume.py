"""Issue 11, kill-anywhere and determinism: a job killed with SIGKILL mid-way and rerun with the same
command resumes (its log says so) and ends with a metrics block byte-identical to an uninterrupted
run's; a killed `snakemake` finishes with `--rerun-incomplete`; nothing is ever left half-written
under its final name; the same seed gives byte-identical metrics; records hold seed, params hash, git sha.

The child is killed from outside (os.kill SIGKILL) while it sits right after its first
checkpoint/chunk: a small wrapper makes the save that the test waits for pause, so the kill lands
mid-run on every machine, however loaded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import VENV_BIN, run_cmd

ROOT = Path(__file__).resolve().parents[1]
PARAMS = str(ROOT / "params.yaml")
pytestmark = pytest.mark.slow

# Runs `robustify ARGV` in this interpreter; after the first save of the module attribute named by
# $PAUSE_AT ("module:function") it sleeps, so the parent can kill it after a checkpoint/chunk.
WRAPPER = r"""
import importlib, os, sys, time
mod_name, fn_name = os.environ["PAUSE_AT"].split(":")
mod = importlib.import_module(mod_name)
real = getattr(mod, fn_name)
def paused(*a, **kw):
    out = real(*a, **kw)
    time.sleep(600)
    return out
setattr(mod, fn_name, paused)
from robustify.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = "sqlite:////nonexistent-robustify-store/mlflow.db"  # side channel off: seconds per run
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_robustify(argv: list[str], tmp: Path) -> subprocess.CompletedProcess:
    res = subprocess.run([str(VENV_BIN / "robustify")] + argv, cwd=tmp, env=_env(tmp), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def run_killed(argv: list[str], tmp: Path, pause_at: str, ready, timeout: float = 300) -> None:
    """Start `robustify argv`, wait until `ready()` (a checkpoint/chunk is on disk), SIGKILL it."""
    env = dict(_env(tmp), PAUSE_AT=pause_at)
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER] + argv, cwd=tmp, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"job ended before the kill (rc {proc.returncode}): {proc.stderr.read()[-3000:]}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError("no checkpoint appeared in time")
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def metrics_block(record: Path) -> str:
    return json.dumps(json.loads(record.read_text())["metrics"], sort_keys=True)


def assert_record(record: Path, seed: int) -> dict:
    rec = json.loads(record.read_text())
    run = rec["run"]
    assert run["seed"] == seed and len(run["params_hash"]) == 12 and run["git_sha"] and run["git_sha"] != "unknown"
    return rec


def assert_no_partial_files(root: Path) -> None:
    """Every file under its final name parses; no temporary file is left over."""
    import torch

    left = [str(p) for p in root.rglob("*.tmp")]
    assert not left, f"temporary files left behind: {left}"
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npz":
            with np.load(p) as f:
                [f[k] for k in f.files]
        elif p.suffix in (".pt", ".state", ".resume"):
            torch.load(p, map_location="cpu", weights_only=False)
        elif p.name.endswith(".sha256"):
            from robustify.io import verify_sha256

            verify_sha256(p.with_name(p.name[: -len(".sha256")]))


def preset(tmp: Path, text: str, data: str = "") -> str:
    p = tmp / "p.yaml"
    p.write_text(f"threads: 1\ndata: {{root: {tmp}/data, val_per_class: 2{data}}}\n" + text)
    return str(p)


# ---------------------------------------------------------------------------------------------


def test_teacher_killed_after_an_epoch_resumes_to_identical_metrics(tmp_path):
    p = preset(tmp_path, "teachers: {epochs: 2, batch_size: 10, train_per_class: 2, test_c_per_class: 1, val_c_per_class: 1, "
                         "severities: [3]}\n", data=", test_per_class: 5")
    base = ["robustify-teacher", "--params", PARAMS, "--configfile", p, "--teacher", "resnet20_cifar", "--scheme", "augmix"]
    ref = ["--out", "ref/t.pt", "--record", "ref/t.json"]
    run_robustify(base + ref, tmp_path)
    state = tmp_path / "k" / "t.pt.state"
    run_killed(base + ["--out", "k/t.pt", "--record", "k/t.json"], tmp_path, "robustify.train.teacher:save_torch", state.is_file)
    assert not (tmp_path / "k" / "t.pt").exists() and not (tmp_path / "k" / "t.json").exists()
    assert_no_partial_files(tmp_path / "k")
    res = run_robustify(base + ["--out", "k/t.pt", "--record", "k/t.json"], tmp_path)
    assert "resuming resnet20_cifar/augmix seed 0 from epoch 1 of 2" in res.stderr
    assert metrics_block(tmp_path / "k" / "t.json") == metrics_block(tmp_path / "ref" / "t.json")  # and determinism
    rec = assert_record(tmp_path / "k" / "t.json", 0)
    from robustify.io import sha256_file

    assert rec["artifacts"]["checkpoint_sha256"] == sha256_file(tmp_path / "k" / "t.pt") == sha256_file(tmp_path / "ref" / "t.pt")
    assert not state.exists() and not Path(str(state) + ".sha256").exists()
    assert_no_partial_files(tmp_path)


def test_distill_killed_after_an_epoch_resumes_to_identical_metrics(tmp_path):
    p = preset(tmp_path, "distill: {epochs: 2, views_per_image: 2, batch_size: 8, train_per_class: 2, "
                         "n_tunable_blocks: {resnet20_cifar: 2}}\n")
    base = ["distill", "--params", PARAMS, "--configfile", p, "--student", "resnet20_cifar", "--teacher", "resnet20_cifar",
            "--scheme", "augmix", "--variant", "full", "--teacher-checkpoint", "pretrained"]
    run_robustify(base + ["--out", "ref/s.pt", "--record", "ref/s.json"], tmp_path)
    resume = tmp_path / "k" / "s.pt.resume"
    run_killed(base + ["--out", "k/s.pt", "--record", "k/s.json"], tmp_path, "robustify.io:save_torch", resume.is_file)
    assert not (tmp_path / "k" / "s.pt").exists() and not (tmp_path / "k" / "s.json").exists()
    assert_no_partial_files(tmp_path / "k")
    res = run_robustify(base + ["--out", "k/s.pt", "--record", "k/s.json"], tmp_path)
    assert "resuming from" in res.stderr and "after epoch 1" in res.stderr
    assert metrics_block(tmp_path / "k" / "s.json") == metrics_block(tmp_path / "ref" / "s.json")
    assert_record(tmp_path / "k" / "s.json", 0)
    assert not resume.exists()
    assert_no_partial_files(tmp_path)


def test_e2e_killed_after_an_epoch_resumes_to_identical_metrics(tmp_path):
    p = preset(tmp_path, "baselines: {train_per_class: 2, e2e_epochs: 2, e2e_batch_size: 10}\n")
    base = ["baseline", "--params", PARAMS, "--configfile", p, "--method", "e2e", "--student", "resnet20_cifar"]
    run_robustify(base + ["--out", "ref/e.pt", "--record", "ref/e.json"], tmp_path)
    state = tmp_path / "k" / "e.pt.train.state"
    run_killed(base + ["--out", "k/e.pt", "--record", "k/e.json"], tmp_path, "robustify.train.teacher:save_torch", state.is_file)
    assert not (tmp_path / "k" / "e.pt").exists() and not (tmp_path / "k" / "e.json").exists()
    res = run_robustify(base + ["--out", "k/e.pt", "--record", "k/e.json"], tmp_path)
    assert "resuming resnet20_cifar/augmix seed 0 from epoch 1 of 2" in res.stderr
    assert metrics_block(tmp_path / "k" / "e.json") == metrics_block(tmp_path / "ref" / "e.json")
    assert_record(tmp_path / "k" / "e.json", 0)
    assert not state.exists() and not (tmp_path / "k" / "e.pt.train").exists()
    assert_no_partial_files(tmp_path)


def test_corrupt_killed_after_a_chunk_resumes_to_an_identical_manifest(tmp_path):
    p = preset(tmp_path, "")
    base = ["corrupt", "--params", PARAMS, "--configfile", p, "--dataset", "cifar10_test", "--subset", "3",
            "--corruptions", "fog", "contrast", "--severities", "1", "2", "--chunk-size", "10"]
    run_robustify(base + ["--out", "ref"], tmp_path)
    ledger = tmp_path / "k" / ".progress.json"
    run_killed(base + ["--out", "k"], tmp_path, "robustify.commands.corrupt:_write_progress", ledger.is_file)
    assert not (tmp_path / "k" / "manifest.json").exists()
    assert_no_partial_files(tmp_path / "k")
    done_before = len(json.loads(ledger.read_text())["chunks"])
    assert 0 < done_before < 12
    res = run_robustify(base + ["--out", "k"], tmp_path)
    assert f"resuming: {done_before} of 12 chunk(s) already done" in res.stderr
    a, b = json.loads((tmp_path / "k" / "manifest.json").read_text()), json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert a == b  # same chunks, same sha256s: deterministic and resumed exactly
    assert_no_partial_files(tmp_path)


def test_snakemake_killed_mid_job_completes_with_rerun_incomplete(workspace):
    (workspace / "tiny.yaml").write_text("corruptions: {names: [fog, contrast], severities: [1, 2], c_subset_per_class: 50, "
                                         "chunk_size: 25}\n")
    args = ["snakemake", "data/cifar10_c/manifest.json", "--cores", "1", "--configfile", "workflow/presets/smoke.yaml",
            "tiny.yaml"]
    env = _env(workspace)
    proc = subprocess.Popen(args, cwd=workspace, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ledger = workspace / "data" / "cifar10_c" / ".progress.json"
    t0 = time.monotonic()
    while not ledger.is_file() and proc.poll() is None and time.monotonic() - t0 < 300:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, as when a node dies
    proc.wait()
    assert not (workspace / "data" / "cifar10_c" / "manifest.json").exists(), "finished before the kill"
    res = run_cmd(args + ["--rerun-incomplete"], workspace, _env(workspace), timeout=600)
    if "cannot be locked" in res.stderr:  # a SIGKILLed snakemake cannot remove its lock (snakemake 9: no stale-lock check)
        print("snakemake: lock left by the killed run; `snakemake --unlock` first")
        assert run_cmd(["snakemake", "--unlock"] + args[2:], workspace, _env(workspace)).returncode == 0
        res = run_cmd(args + ["--rerun-incomplete"], workspace, _env(workspace), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    log = (workspace / "logs" / "corrupt" / "cifar10_c.log").read_text()
    assert "resuming" in log
    manifest = json.loads((workspace / "data" / "cifar10_c" / "manifest.json").read_text())
    assert manifest["n_files"] == 4 * 20
    assert_no_partial_files(workspace / "data")


# ---------------------------------------------------------------------------------------------
# determinism of the stages not covered above (teacher, distill, E2E, corrupt compare two processes above)


def test_linear_probe_same_seed_gives_identical_metrics(tmp_path):
    p = tmp_path / "lp.yaml"
    recs = []
    for run in ("a", "b"):  # separate data roots: the feature cache is rebuilt, not reused
        p.write_text(f"threads: 1\ndata: {{root: {tmp_path}/{run}/data, val_per_class: 5, train_per_class: 5, test_per_class: 5}}\n"
                     "models: {image_size: {efficientnet_lite0: 32}}\nlinear_probe: {weight_decays: [0.1], max_iter: 10}\n")
        run_robustify(["linear-probe", "--params", PARAMS, "--configfile", str(p), "--student", "efficientnet_lite0",
                       "--out", f"{run}/lp.pt", "--record", f"{run}/lp.json"], tmp_path)
        recs.append(tmp_path / run / "lp.json")
    assert metrics_block(recs[0]) == metrics_block(recs[1])
    a, b = assert_record(recs[0], 0), assert_record(recs[1], 0)
    assert a["run"]["params_hash"] == b["run"]["params_hash"]
    assert a["artifacts"]["checkpoint_sha256"] == b["artifacts"]["checkpoint_sha256"]


def test_evaluate_same_seed_gives_identical_metrics(tmp_path):
    """MC-dropout evaluation of a distilled-format-free model: the same seed, two processes, same metrics block."""
    rng = np.random.default_rng(0)
    with open(tmp_path / "d.npz", "wb") as f:
        np.savez(f, x=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y=np.arange(20) % 10)
    p = preset(tmp_path, "evaluate: {mc_passes: 3}\n")
    recs = []
    for run in ("a", "b"):  # separate output dirs: the per-sample files are recomputed, not reused
        run_robustify(["evaluate", "--params", PARAMS, "--configfile", p, "--pretrained", "resnet20_cifar", "--data", "d.npz",
                       "--out-dir", f"{run}/eval", "--record", f"{run}/r.json"], tmp_path)
        recs.append(tmp_path / run / "r.json")
    assert metrics_block(recs[0]) == metrics_block(recs[1])
    assert_record(recs[0], 0)
