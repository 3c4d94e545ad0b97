"""Workflow wiring: snakemake lint and dry-runs, and the DVC ↔ Snakemake ↔ schema drift guard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cmd


def snakemake(*args: str, cwd: Path = ROOT):
    return run_cmd(["snakemake", *args], cwd=cwd)


def test_lint_clean():
    res = snakemake("--lint")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr


@pytest.mark.parametrize("preset", [None, "workflow/presets/smoke.yaml", "workflow/presets/full.yaml",
                                    "workflow/presets/paper.yaml"])
def test_dry_run_plans_whole_dag(preset):
    args = ["-n", "--quiet", "rules"] + (["--configfile", preset] if preset else [])
    res = snakemake(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "total" in res.stdout + res.stderr


def test_apt_trains_once_per_student():
    """no_kd (= APT) uses no teacher: one distill job per student × scheme × seed (teacher 'none'), no apt job."""
    res = snakemake("-n", "distill_all", "baselines")
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    no_kd = sorted(set(re.findall(r"students/(\w+?)_none_augmix_deepaugment_no_kd_s0\.pt", out)))
    assert no_kd == ["efficientnet_lite0", "resnet56_cifar"], no_kd
    assert not re.search(r"_resnet\d+_cifar_\w+_no_kd_s", out), "no_kd must not run once per teacher"
    assert "baselines/apt/" not in out


def _planned_jobs(out: str) -> list[dict]:
    """rule / input / output of each job of a `snakemake -n` plan."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", out):
        m = re.match(r"rule (\w+):", block)
        if m:
            field = lambda k: (re.search(rf"^\s+{k}: (.*)$", block, re.M) or [None, ""])[1]
            jobs.append({"rule": m[1], "input": field("input"), "output": field("output")})
    return jobs


def test_seed_axes(tmp_path):
    """Distillation runs every seed; teachers and trained baselines their own seeds (default one), and a
    distillation seed without its own teacher learns from the first teacher seed."""
    res = snakemake("-n", "distill_all", "baselines", "teachers")
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = _planned_jobs(res.stdout + res.stderr)
    seeds = lambda rule: sorted({int(s) for j in jobs if j["rule"] == rule for s in re.findall(r"_s(\d+)\.pt", j["output"])})
    assert seeds("distill") == [0, 1, 2]
    assert seeds("robustify_teacher") == [0] and seeds("e2e") == [0] and seeds("vpt") == [0]
    full = [j for j in jobs if j["rule"] == "distill" and "_full_s2.pt" in j["output"]]
    assert full and all(re.search(r"teachers/resnet\d+_cifar_augmix_deepaugment_s0\.pt", j["input"]) for j in full)

    override = tmp_path / "seeds.yaml"  # null = the top-level seeds: a teacher and an E2E run per seed
    override.write_text("teachers: {seeds: null}\nbaselines: {seeds: null}\n")
    res = snakemake("-n", "distill_all", "baselines", "teachers", "--configfile", str(override))
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = _planned_jobs(res.stdout + res.stderr)
    assert seeds("robustify_teacher") == [0, 1, 2] and seeds("e2e") == [0, 1, 2]
    full = [j for j in jobs if j["rule"] == "distill" and "_full_s2.pt" in j["output"]]
    assert full and all("augmix_deepaugment_s2.pt" in j["input"] for j in full)


def target_rules() -> set[str]:
    res = snakemake("--list-target-rules")
    assert res.returncode == 0, res.stderr
    return {l.strip() for l in res.stdout.splitlines() if l.strip() and " " not in l.strip()} - {"all"}


def summary_files(target: str) -> set[str]:
    res = snakemake("--summary", target)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("output_file"))
    return {l.split("\t")[0] for l in lines[start + 1:] if l.strip()}


def _outs(stage: dict) -> list[str]:
    return [o if isinstance(o, str) else next(iter(o)) for o in stage.get("outs", []) + stage.get("metrics", [])
            + stage.get("plots", []) if isinstance(o, (str, dict))]


def _covered(path: str, outs: list[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs)


@pytest.fixture(scope="module")
def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_one_dvc_stage_per_snakemake_target(dvc_stages):
    assert set(dvc_stages) == target_rules()
    for name, stage in dvc_stages.items():
        assert stage["cmd"] == f"snakemake --cores all {name}", f"stage {name} must run its own Snakemake target"


def upstream_stages(name: str, stages: dict) -> set[str]:
    """Stages whose outs feed `name`, transitively (DVC's own DAG)."""
    direct = {n for n, s in stages.items() if n != name for o in _outs(s)
              for d in stages[name].get("deps", []) if _covered(o, [d]) or _covered(d, [o])}
    return direct.union(*(upstream_stages(n, stages) for n in direct)) if direct else set()


def test_dvc_outs_cover_what_each_target_makes(dvc_stages):
    all_outs = {name: _outs(stage) for name, stage in dvc_stages.items()}
    for name in dvc_stages:
        upstream = [o for n in upstream_stages(name, dvc_stages) for o in all_outs[n]]
        for f in summary_files(name):
            assert _covered(f, all_outs[name]) or _covered(f, upstream), f"{f} (made by target {name}) is not a DVC out of stage {name} or of a stage it depends on"


def test_dvc_params_exist_in_schema(dvc_stages):
    schema = json.loads((ROOT / "workflow/schemas/params.schema.json").read_text())
    for name, stage in dvc_stages.items():
        for p in stage.get("params", []):
            key = p if isinstance(p, str) else next(iter(p))
            assert key.split(".")[0] in schema["properties"], f"stage {name} tracks unknown param {key}"


def test_dvc_deps_exist(dvc_stages):
    made = {o for stage in dvc_stages.values() for o in _outs(stage)}
    for name, stage in dvc_stages.items():
        for d in stage.get("deps", []):
            assert (ROOT / d).exists() or _covered(d, list(made)) or any(_covered(m, [d]) for m in made), f"{name}: dep {d} neither exists nor is made by a stage"


def test_every_rule_has_a_log_and_calls_the_cli():
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        text = smk.read_text()
        for block in text.split("\nrule ")[1:]:
            name = block.split(":")[0]
            if "shell:" in block:
                assert "log:" in block, f"rule {name} in {smk.name} has no log"
                assert "robustify " in block.split("shell:")[1], f"rule {name} must call the robustify CLI"


def test_dvc_yaml_is_valid_for_dvc():
    res = run_cmd(["dvc", "stage", "list"], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert set(l.split()[0] for l in res.stdout.splitlines() if l.strip()) == set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
