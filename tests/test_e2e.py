"""A tiny end-to-end run through Snakemake (smoke preset): records → tables, MLflow ≡ records."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_cmd


@pytest.mark.slow
def test_linear_probe_slice_end_to_end(workspace):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}"}
    res = run_cmd(["snakemake", "tables", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml"], workspace, env)
    assert res.returncode == 0, res.stderr[-4000:]
    main = pd.read_csv(workspace / "results/tables/main.csv")
    rows = {(r.method, r.student) for r in main.itertuples()}
    assert {("linear_probe", "efficientnet_lite0"), ("original", "efficientnet_lite0"), ("original", "resnet56_cifar")} <= rows
    lp = main[(main.method == "linear_probe")].iloc[0]
    assert 20 < lp.clean < 100 and lp.train_s_per_image > 0
    # the pretrained ResNet-56 on the first 40 test images per class
    assert main[(main.method == "original") & (main.student == "resnet56_cifar")].clean.iloc[0] > 85
    # the LP head and the original row of the ImageNet student are the same model
    assert main[(main.method == "original") & (main.student == "efficientnet_lite0")].clean.iloc[0] == pytest.approx(lp.clean)

    res = run_cmd(["robustify", "tables", "--from", "mlflow", "--out-dir", "from_mlflow"], workspace, env)
    assert res.returncode == 0, res.stderr[-2000:]
    pd.testing.assert_frame_equal(main, pd.read_csv(workspace / "from_mlflow/main.csv"))

    # a second run has nothing to do
    res = run_cmd(["snakemake", "tables", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml", "-n"], workspace, env)
    assert "Nothing to be done" in res.stdout + res.stderr
