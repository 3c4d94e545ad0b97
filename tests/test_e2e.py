"""The whole DAG end to end on the smoke preset: every stage through Snakemake, tables and figures
from the records, the same tables from MLflow, and a second run with nothing to do."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import run_cmd

SMOKE = ["--cores", "2", "--configfile", "workflow/presets/smoke.yaml"]


@pytest.mark.slow
def test_smoke_pipeline_end_to_end(workspace):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}"}
    res = run_cmd(["snakemake", "all", *SMOKE], workspace, env, timeout=3000)
    assert res.returncode == 0, res.stderr[-4000:]

    main = pd.read_csv(workspace / "results/tables/main.csv")
    for student in ("resnet56_cifar", "efficientnet_lite0"):
        methods = set(main[main.student == student].method)
        assert {"original", "e2e", "wise_e2e_0.5", "vpt", "apt", "ours"} <= methods, methods
    assert "linear_probe" in set(main[main.student == "efficientnet_lite0"].method)
    ours = main[(main.method == "ours") & (main.student == "resnet56_cifar")].iloc[0]
    assert ours.teacher == "resnet20_cifar" and 0 < ours.train_s_per_image and ours.gflops > 0
    # the pretrained ResNet-56 keeps its accuracy on the smoke test subset
    assert main[(main.method == "original") & (main.student == "resnet56_cifar")].clean.iloc[0] > 80
    for col in ("clean", "c", "r", "sketch", "objectnet", "objectnet_c", "transfer"):
        assert main[col].dropna().between(0, 100).all() and main[col].notna().sum() >= 10, col

    tables = sorted(p.name for p in (workspace / "results/tables").glob("*.csv"))
    assert {"main.csv", "ablations.csv", "fcorrect.csv", "claims.csv", "kd_pairs.csv", "aug_schemes.csv",
            "teacher_student_grid.csv", "robustness_analysis.csv", "zero_shot.csv"} <= set(tables)
    claims = pd.read_csv(workspace / "results/tables/claims.csv")
    assert len(claims) > 5 and {"claim", "measured", "threshold", "holds"} <= set(claims.columns)
    for fig in ("figure1_pareto", "figure2_datasets", "figure3_severity", "figure5_grid", "ablations_fcorrect"):
        assert (workspace / f"results/figures/{fig}.png").stat().st_size > 10_000, fig
    assert json.loads((workspace / "results/tables/summary.json").read_text())

    # MLflow holds the same runs: every table rebuilt from it equals the one built from the records
    res = run_cmd(["robustify", "tables", "--from", "mlflow", "--out-dir", "from_mlflow"], workspace, env)
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("main.csv", "ablations.csv", "fcorrect.csv", "claims.csv", "robustness_analysis.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(workspace / "results/tables" / name),
                                      pd.read_csv(workspace / "from_mlflow" / name), obj=name)

    res = run_cmd(["snakemake", "all", "-n", *SMOKE], workspace, env)
    assert "Nothing to be done" in res.stdout + res.stderr
