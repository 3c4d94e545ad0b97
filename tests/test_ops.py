"""Scale-out and operations (issue 12): SLURM/default profiles, conda envs ↔ pyproject, DDP under torchrun,
MLflow on a real PostgreSQL server and on sqlite under 16 parallel jobs, DVC remote round trip, benchmarks."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, VENV_BIN, run_cmd

TESTS = Path(__file__).resolve().parent
PG_URI = os.environ.get("ROBUSTIFY_TEST_PG_URI", "postgresql://robustify:robustify@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("ROBUSTIFY_REQUIRE_PG") == "1"  # .ci/run: PostgreSQL must be there


# ---------------------------------------------------------------------------------------------
# 1. profiles


@pytest.mark.parametrize("profile,preset", [("profiles/default", "workflow/presets/smoke.yaml"),
                                            ("profiles/slurm", "workflow/presets/paper.yaml")])
def test_profile_dry_run_plans(profile, preset):
    args = ["snakemake", "-n", "--profile", profile] + (["--configfile", preset] if preset else [])
    res = run_cmd(args, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert "total" in out and "This was a dry-run" in out, out[-2000:]
    if profile == "profiles/slurm":
        # GPU only where a network runs over the data; data/corrupt/report jobs stay on CPU nodes
        for block in out.split("\nrule ")[1:]:
            name = block.split(":", 1)[0].strip()
            res_line = next((l for l in block.splitlines() if l.strip().startswith("resources:")), "")
            if name in ("fetch_data", "corrupt_cifar10_c", "corrupt_objectnet_c", "tables", "figures"):
                assert "gpu=" not in res_line, (name, res_line)
            if name in ("robustify_teacher", "distill", "e2e", "evaluate", "linear_probe"):
                assert "gpu=1" in res_line and "slurm_partition=gpu" in res_line, (name, res_line)


def test_slurm_profile_uses_the_executor_plugin():
    cfg = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert cfg["executor"] == "slurm"
    import snakemake_executor_plugin_slurm  # noqa: F401 - pinned in pyproject (test + cluster extras)

    rules = set(cfg["set-resources"])
    gpu_rules = {r for r, v in cfg["set-resources"].items() if v.get("gpu") or "gpu" in str(v.get("gres", ""))}
    assert {"robustify_teacher", "distill", "e2e", "evaluate"} <= gpu_rules
    assert not gpu_rules & {"fetch_data", "corrupt_cifar10_c", "corrupt_objectnet_c", "tables"}
    assert {"fetch_data", "tables"} <= rules


# ---------------------------------------------------------------------------------------------
# 2. conda envs ↔ pyproject


def _pins(reqs) -> dict[str, str]:
    """{normalised name: exact version} of `name==version` (pip) / `name=version` (conda) entries."""
    out = {}
    for r in reqs:
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==|=)\s*([A-Za-z0-9_.*+\-]+)$", r.strip())
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(3)
    return out


def _env_files() -> list[Path]:
    return sorted((ROOT / "workflow/envs").glob("*.yaml"))


def test_every_rule_uses_an_existing_family_env():
    envs = {p.name for p in _env_files()}
    assert {"data.yaml", "corrupt.yaml", "train.yaml", "evaluate.yaml", "report.yaml"} <= envs
    used = set()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        text = smk.read_text()
        for m in re.finditer(r'conda:\s*\n\s*"\.\./envs/([^"]+)"', text):
            assert m.group(1) in envs, f"{smk.name} uses missing env {m.group(1)}"
            used.add(m.group(1))
        n_rules = len(re.findall(r"^rule \w+:\n(?:(?!^rule ).*\n)*?\s+shell:", text, re.M))
        assert text.count("conda:") >= n_rules, f"{smk.name}: every rule with a shell command needs a conda env"
    assert used, "no rule references an env"


@pytest.mark.parametrize("env_file", _env_files(), ids=lambda p: p.name)
def test_env_file_consistent_with_pyproject(env_file):
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = _pins(proj["dependencies"])
    env = yaml.safe_load(env_file.read_text())
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = next((d["pip"] for d in deps if isinstance(d, dict) and "pip" in d), [])
    py = next(d for d in conda if re.match(r"^python\b", d))
    py_ver = re.split(r"[=<>]+", py, maxsplit=1)[1]
    lo, hi = re.match(r">=\s*([\d.]+)\s*,\s*<\s*([\d.]+)", proj["requires-python"]).groups()
    as_tuple = lambda v: tuple(int(x) for x in v.split(".")[:2])  # noqa: E731
    assert as_tuple(lo) <= as_tuple(py_ver) < as_tuple(hi), f"{env_file.name}: {py} vs requires-python {proj['requires-python']}"
    assert "pip" in conda and "-e ../.." in pip, f"{env_file.name} must pip-install the project (-e ../..)"
    for name, ver in {**_pins(conda), **_pins(pip)}.items():
        if name in want:
            assert ver == want[name], f"{env_file.name}: {name} {ver} but pyproject pins {want[name]}"


# ---------------------------------------------------------------------------------------------
# 3. DDP under torchrun (2 CPU processes, gloo) ≡ one process with the same global batch


@pytest.fixture(scope="module")
def torchrun_outputs(tmp_path_factory):
    """All jobs of tests/_ddp_worker.py in one `torchrun --nproc_per_node 2` (gloo, CPU)."""
    out = tmp_path_factory.mktemp("ddp")
    res = run_cmd([str(VENV_BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_free_port()),
                   str(TESTS / "_ddp_worker.py"), "all", str(out)], cwd=out, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def _single_process(job: str, tmp_path: Path) -> dict:
    sys.path.insert(0, str(TESTS))
    import _ddp_worker

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _ddp_worker.train_teacher(str(tmp_path / "t.pt")) if job == "teacher" else _ddp_worker.JOBS[job]()
    finally:
        torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.parametrize("job,tol", [("mlp", 1e-6), ("distill", 1e-5)])
def test_torchrun_two_processes_match_single_process(torchrun_outputs, tmp_path, job, tol):
    """Same global batch, gradients averaged by DDP → the same weights as one process."""
    ddp = torch.load(torchrun_outputs / f"{job}.pt", weights_only=False)
    assert ddp["world_size"] == 2
    ref = _single_process(job, tmp_path)
    assert ref["state"].keys() == ddp["state"].keys()
    for k, v in ref["state"].items():
        torch.testing.assert_close(ddp["state"][k].float(), v.float(), atol=tol, rtol=0, msg=k)
    if job == "distill":  # logged epoch means are all-reduced over the ranks
        for a, b in zip(ref["history"], ddp["history"]):
            assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a)


@pytest.mark.slow
def test_torchrun_teacher_loop_rank0_writes_and_tracks_single_process(torchrun_outputs, tmp_path):
    """The teacher loop (also E2E and VPT): BatchNorm sees per-rank batches, so only close, not equal;
    rank 0 alone writes the output and the resume state."""
    ddp = torch.load(torchrun_outputs / "teacher.pt", weights_only=False)
    assert ddp["world_size"] == 2
    assert (torchrun_outputs / "teacher_out.pt").is_file() and (torchrun_outputs / "teacher_out.pt.state").is_file()
    assert not list(torchrun_outputs.glob("*.tmp"))
    ref = _single_process("teacher", tmp_path)
    assert ddp["history"] == pytest.approx(ref["history"], rel=1e-2)
    for k, v in ref["state"].items():
        if v.is_floating_point() and "running" not in k:
            torch.testing.assert_close(ddp["state"][k].float(), v.float(), atol=5e-3, rtol=0, msg=k)


def test_distributed_helpers_are_noops_for_one_process():
    from robustify.train import distributed

    d = distributed.setup({})
    assert not d.enabled and d.is_main
    m = torch.nn.Linear(2, 2)
    assert distributed.wrap(m, d) is m
    idx = torch.arange(7)
    assert distributed.shard(idx, d) == (idx, 1.0)
    two = [distributed.DistEnv(r, 2) for r in (0, 1)]
    parts = [distributed.shard(idx, e) for e in two]
    assert torch.equal(torch.cat([p for p, _ in parts]), idx)
    # DDP averages the ranks' gradients: each sample must end up with weight 1/n, as in the global mean
    for p, s in parts:
        assert s / len(p) / 2 == pytest.approx(1 / len(idx))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# 4. MLflow: 16 parallel jobs → 16 runs, on a PostgreSQL-backed server and on the default sqlite store


def _parallel_log(uri: str, workdir: Path, n: int = 16) -> dict:
    res = run_cmd([sys.executable, str(TESTS / "_parallel_log.py"), uri, str(n), str(workdir)], cwd=workdir, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "skipped" not in res.stderr, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _runs(uri: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("ops-parallel")
    return client.search_runs([exp.experiment_id], max_results=1000)


def _check_16(uri: str, stats: dict) -> None:
    runs = _runs(uri)
    assert stats == {**stats, "ok": 16, "failed": 0}
    assert len(runs) == 16 and len({r.data.tags["record_path"] for r in runs}) == 16
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["metrics.acc"] for r in runs) == pytest.approx([i / 16 for i in range(16)])


@pytest.mark.slow
def test_sixteen_parallel_jobs_on_sqlite_lose_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _check_16(uri, _parallel_log(uri, tmp_path))


@pytest.fixture
def postgres_db():
    """A fresh database on the local PostgreSQL (.ci/services.sh sets it up); skipped when absent."""
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 not installed (pip install -e '.[test]')")
    try:
        admin = psycopg2.connect(PG_URI, connect_timeout=3)
    except psycopg2.OperationalError as e:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (ROBUSTIFY_REQUIRE_PG=1) but not reachable at {PG_URI}: {e}")
        pytest.skip(f"no PostgreSQL at {PG_URI} (run .ci/services.sh): {str(e).strip()[:120]}")
    admin.autocommit = True
    name = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield PG_URI.rsplit("/", 1)[0] + "/" + name
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def mlflow_server(postgres_db, tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen([str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", postgres_db,
                             "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--workers", "2"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"mlflow server did not come up: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        yield url, tmp_path / "artifacts"
    finally:
        os.killpg(proc.pid, 15)  # the server and its workers (own session)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_sixteen_parallel_jobs_on_postgres_server_lose_nothing(mlflow_server, tmp_path):
    url, artifacts = mlflow_server
    work = tmp_path / "jobs"
    work.mkdir()
    _check_16(url, _parallel_log(url, work))
    assert len(list(artifacts.rglob("record_*.json"))) == 16  # file artifacts through the server


# ---------------------------------------------------------------------------------------------
# 5. DVC: local default remote, push/pull round trip, no rerun after a pull


def test_dvc_default_remote_is_configured():
    res = run_cmd(["dvc", "remote", "default"], cwd=ROOT)
    assert res.returncode == 0 and res.stdout.strip(), res.stderr
    res = run_cmd(["dvc", "remote", "list"], cwd=ROOT)
    assert res.stdout.strip().split()[0] == run_cmd(["dvc", "remote", "default"], cwd=ROOT).stdout.strip()


def _tiny_project(tmp_path, snakefile: str, out):
    """(project dir, shell) of a tiny Snakemake+DVC project: one DVC stage running `snakemake all` on in.txt."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "Snakefile").write_text(snakefile)
    (proj / "in.txt").write_text("robust heads\n")
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"all": {
        "cmd": "snakemake --cores 1 all", "deps": ["in.txt", "Snakefile"], "outs": [out]}}}))
    return proj, lambda *a: run_cmd(list(a), cwd=proj, timeout=300)


@pytest.mark.slow
def test_dvc_push_pull_round_trip_then_nothing_reruns(tmp_path):
    """A tiny Snakemake+DVC project: repro → push → wipe outputs and cache → pull → dvc status clean,
    and `snakemake --touch` marks the restored outputs current so the workflow plans nothing."""
    remote = tmp_path / "remote"
    proj, sh = _tiny_project(tmp_path, 'rule all:\n    input: "out/b.txt"\n\n'
                             'rule a:\n    input: "in.txt"\n    output: "out/a.txt"\n    shell: "tr a-z A-Z < {input} > {output}"\n\n'
                             'rule b:\n    input: "out/a.txt"\n    output: "out/b.txt"\n    shell: "cat {input} {input} > {output}"\n',
                             "out")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "remote", "add", "-d", "local", str(remote)],
                ["dvc", "repro", "-q"], ["dvc", "push", "-q"]):
        r = sh(*cmd)
        assert r.returncode == 0, (cmd, r.stdout + r.stderr)
    want = (proj / "out/b.txt").read_text()
    assert want == "ROBUST HEADS\n" * 2 and any(remote.rglob("*"))
    shutil.rmtree(proj / "out")
    shutil.rmtree(proj / ".dvc" / "cache")
    shutil.rmtree(proj / ".snakemake", ignore_errors=True)  # a fresh clone has no Snakemake metadata
    r = sh("dvc", "pull", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (proj / "out/b.txt").read_text() == want
    r = sh("dvc", "status")
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout
    # restored files carry checkout times, not build order: --touch records them as current
    r = sh("snakemake", "--cores", "1", "--touch", "all")
    assert r.returncode == 0, r.stderr[-2000:]
    r = sh("snakemake", "-n", "--cores", "1", "all")
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, r.stdout + r.stderr
    r = sh("dvc", "repro", "--dry")
    assert r.returncode == 0 and "didn't change" in r.stdout + r.stderr and "Running stage" not in r.stdout, r.stdout


def test_dvc_repro_after_snakemake_keeps_its_outputs(tmp_path):
    """Outs are `persist: true` (as in our dvc.yaml): `dvc repro` after a plain Snakemake run records
    hashes and leaves Snakemake's outputs alone — it does not delete and rebuild them."""
    proj, sh = _tiny_project(tmp_path, 'rule all:\n    input: "out/a.txt"\n\n'
                             'rule a:\n    input: "in.txt"\n    output: "out/a.txt"\n'
                             '    shell: "echo run >> runs.log; cp {input} {output}"\n',
                             {"out": {"persist": True}})
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["snakemake", "--cores", "1"], ["dvc", "repro", "-q"]):
        r = sh(*cmd)
        assert r.returncode == 0, (cmd, r.stdout + r.stderr)
    assert (proj / "runs.log").read_text() == "run\n"  # Snakemake ran the rule once; DVC did not rebuild
    r = sh("dvc", "repro")
    assert r.returncode == 0 and "didn't change" in r.stdout + r.stderr, r.stdout + r.stderr


def test_project_dvc_outs_persist():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, st in stages.items():
        for o in st.get("outs", []):
            assert isinstance(o, dict) and next(iter(o.values())).get("persist") is True, (name, o)


# ---------------------------------------------------------------------------------------------
# 6. benchmarks collection


def test_collect_merges_benchmark_outputs(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import collect

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text(json.dumps({"ratio_x_over_y": 2.5, "seconds": 1.0}))
    (out / "b.json").write_text(json.dumps({"results": [{"student": "r56", "image_size": 32, "wall_ratio": {"ours": 1.1}},
                                                        {"student": "lite0", "image_size": 96, "ms": 3.0}]}))
    (out / "broken.json").write_text("{")
    merged = collect.collect(out)
    assert set(merged["benchmarks"]) == {"a", "b"} and merged["skipped"] == ["broken.json"]
    assert merged["ratios"] == {"a.ratio_x_over_y": 2.5, "b.results[r56@32].wall_ratio.ours": 1.1}
    assert "| a.ratio_x_over_y | 2.5 |" in collect.markdown(merged, full=True)
    assert collect.headline({"i[r].extra_model_calls_for_all_rules.trunk": 0.0, "i[r].wall_ratio.ours": 1.04,
                             "c.results.32.fog.ratio": 7.0}) == {"i[r].extra_model_calls_for_all_rules": 0.0,
                                                                 "i[r].wall_ratio.ours": 1.04}
