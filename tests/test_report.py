"""Report (issue 10): tables from synthetic records, seed means, claims, figures, records ≡ MLflow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _report_records import BASE, OFFSET, SCHEME, SEEDS, write_synthetic
from robustify.config import ReportConfig
from robustify.report import runs as R
from robustify.report import tables as T
from robustify.report.claims import CLAIMS_COLUMNS
from robustify.report.figures import FIGURE_NAMES, pareto_front

FIXED = {
    "main.csv": T.MAIN_COLUMNS, "zero_shot.csv": T.ZERO_SHOT_COLUMNS, "aug_schemes.csv": T.AUG_COLUMNS,
    "ablations.csv": T.ABLATION_COLUMNS, "fcorrect.csv": T.FCORRECT_COLUMNS, "kd_pairs.csv": T.KD_COLUMNS,
    "teacher_student_grid.csv": T.GRID_COLUMNS, "robustness_analysis.csv": T.ROBUSTNESS_COLUMNS,
    "claims.csv": CLAIMS_COLUMNS,
}
SEED_MEAN = 0.5 * np.mean(SEEDS)  # the formula adds 0.5·seed


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("report") / "metrics")


@pytest.fixture(scope="module")
def built(metrics_dir):
    return T.build_tables(R.from_records(metrics_dir))


def _row(df, **where):
    sel = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        sel &= (df[k] == v).to_numpy()
    assert sel.sum() == 1, (where, df[sel])
    return df[sel].iloc[0]


def test_every_table_has_its_fixed_columns(built):
    assert set(built) == set(T.TABLE_NAMES) == set(FIXED)
    for name, cols in FIXED.items():
        assert list(built[name].columns) == cols, name
    assert built["zero_shot.csv"].empty  # no zero-shot runs: header only


def test_main_table_means_over_seeds_and_spread(built):
    main = built["main.csv"]
    r = _row(main, method="ours", student="resnet56_cifar", teacher="resnet20_cifar")
    assert r["n_seeds"] == 3
    assert r["c"] == pytest.approx(BASE["ours"] + OFFSET["c"] + SEED_MEAN)
    assert r["c_std"] == pytest.approx(np.std([0.5 * s for s in SEEDS], ddof=1))
    assert r["train_s_per_image"] == pytest.approx(0.001)  # from the distill record, joined by seed
    assert r["gflops"] == pytest.approx(0.103)
    shifts = [BASE["ours"] + OFFSET[s] + SEED_MEAN - (2.0 if s == "r" else 0) for s in T.SHIFTS]
    assert r["shift_mean"] == pytest.approx(np.mean(shifts))
    o = _row(main, method="original", student="resnet56_cifar")
    assert o["n_seeds"] == 1 and np.isnan(o["c_std"])
    # the main scheme only: pixmix runs of ours are not in the main table
    assert len(main[(main["method"] == "ours") & (main["student"] == "resnet56_cifar")]) == 1
    methods = list(main[main["student"] == "efficientnet_lite0"]["method"])
    assert methods == ["original", "linear_probe", "e2e", "wise_e2e_0.5", "vpt", "apt", "apt", "ours", "ours"]


def test_teacher_records_are_percent_and_joined_to_schemes(built):
    a = built["aug_schemes.csv"]
    r = _row(a, student="resnet56_cifar", teacher="resnet20_cifar", scheme="pixmix")
    assert r["teacher_clean"] == pytest.approx(90.0) and r["teacher_c"] == pytest.approx(62.0)
    assert r["c"] == pytest.approx(BASE["ours"] + OFFSET["c"] + SEED_MEAN + 0.5)


def test_ablations_fcorrect_kd_and_grid(built):
    ab = built["ablations.csv"]
    key = dict(student="resnet56_cifar", teacher="resnet20_cifar", scheme=SCHEME)
    ours, no_kld = _row(ab, ablation="ours", **key), _row(ab, ablation="no_kld", **key)
    assert ours["shift_mean"] - no_kld["shift_mean"] == pytest.approx(2.0)
    no_kd = _row(ab, ablation="no_kd", **key)
    assert no_kd["c"] == pytest.approx(BASE["apt"] + OFFSET["c"] + SEED_MEAN)
    assert list(ab[(ab["student"] == key["student"]) & (ab["scheme"] == SCHEME)]["ablation"]) == T.ABLATION_ROWS
    fc = built["fcorrect.csv"]
    assert _row(fc, method="ours", rule="max_logit", **key)["fcorrect_clean"] == pytest.approx(0.63)
    kd = _row(built["kd_pairs.csv"], **key)
    assert kd["gain_c"] == pytest.approx(1.0) and kd["n_seeds"] == 3
    grid = built["teacher_student_grid.csv"]
    assert _row(grid, student="efficientnet_lite0", teacher="resnet56_cifar", scheme=SCHEME)["gain_c_over_apt"] == pytest.approx(2.0)
    assert _row(grid, student="efficientnet_lite0", teacher="none", scheme=SCHEME)["gain_c_over_apt"] == pytest.approx(0.0)
    # pixmix ran no APT: the student's APT of any scheme is the reference
    assert _row(grid, student="resnet56_cifar", teacher="resnet20_cifar", scheme="pixmix")["gain_c_over_apt"] == pytest.approx(1.5)


def test_robustness_analysis_has_severities(built):
    ra = built["robustness_analysis.csv"]
    sev = ra[(ra["setting"] == "original") & (ra["student"] == "resnet56_cifar") & (ra["dataset"] == "c")]
    assert list(sev["severity"]) == ["all", "1", "2", "3"]
    assert list(sev["accuracy"]) == pytest.approx([60.0, 63.0, 60.0, 57.0])


def test_claims_hold_and_fail_as_constructed(built):
    c = built["claims.csv"]
    key = dict(student="resnet56_cifar", teacher="resnet20_cifar")
    expect = {"ours_gt_apt_c": (True, 1.0), "ours_gt_apt_r": (False, -1.0), "ours_gt_no_kld_shift": (True, 2.0),
              "ours_gt_max_logit_shift": (False, -1.0), "ours_cheaper_than_wise_e2e": (True, 10.0),
              "gflops_overhead": (True, 3.0), "pixmix_teachers_ge_augmix_deepaugment": (True, 0.5),
              "e2e_loses_more_transfer": (True, 5.0)}
    for claim, (holds, measured) in expect.items():
        r = _row(c, claim=claim, **key)
        assert r["holds"] is holds, claim
        assert r["measured"] == pytest.approx(measured), claim
    r = _row(c, claim="ours_gt_apt_c", **key)
    assert r["n_seeds"] == 3 and r["detail"] == "paired by seed"
    # resnet56 has no ImageNet head: retention is reported as not measured, never dropped
    r = _row(c, claim="ours_retention_kept", **key)
    assert r["holds"] is None and r["detail"].startswith("not measured")
    assert _row(c, claim="ours_retention_kept", student="efficientnet_lite0", teacher="resnet20_cifar")["holds"] is True


def test_claim_thresholds_are_knobs(metrics_dir):
    c = T.build_tables(R.from_records(metrics_dir), ReportConfig(cost_ratio=20.0))["claims.csv"]
    assert _row(c, claim="ours_cheaper_than_wise_e2e", student="resnet56_cifar", teacher="resnet20_cifar")["holds"] is False


def test_pareto_front():
    cost = np.array([1.0, 2.0, 3.0, 0.5, 2.5])
    acc = np.array([50.0, 60.0, 55.0, 40.0, 61.0])
    assert list(pareto_front(cost, acc)) == [3, 0, 1, 4]


def test_report_cli_writes_tables_figures_summary(metrics_dir, tmp_path, cli):
    """As the workflow runs them: rule `tables` writes main.csv only, rule report_all the rest (no file has two writers)."""
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    code, _, err = cli("tables", "--metrics-dir", metrics_dir, "--out-dir", tables, "--only", "main.csv")
    assert code == 0, err
    assert sorted(p.name for p in tables.iterdir()) == ["main.csv"]
    code, _, err = cli("tables", "--metrics-dir", metrics_dir, "--out-dir", tables, "--only", "mian.csv")
    assert code != 0 and "unknown table" in err
    main_mtime = (tables / "main.csv").stat().st_mtime_ns
    code, out, err = cli("report", "--metrics-dir", metrics_dir, "--tables-dir", tables, "--figures-dir", figures,
                         "--exclude-table", "main.csv")
    assert code == 0, err
    assert (tables / "main.csv").stat().st_mtime_ns == main_mtime
    assert {p.name for p in tables.iterdir()} == set(T.TABLE_NAMES) | {"summary.json"}
    for name in T.TABLE_NAMES:
        df = pd.read_csv(tables / name)
        assert list(df.columns) == FIXED[name]
    for name in FIGURE_NAMES:
        for fmt in ("png", "pdf"):
            assert (figures / f"{name}.{fmt}").stat().st_size > 5000, name
    s = json.loads((tables / "summary.json").read_text())
    assert s["claims"]["failed"] >= 2 and s["claims"]["held"] > 0
    assert s["main"]["resnet56_cifar"]["ours<-resnet20_cifar"]["c"] == pytest.approx(BASE["ours"] + OFFSET["c"] + SEED_MEAN)


def test_report_without_records_is_one_error_line(tmp_path, cli):
    from conftest import one_error_line

    code, _, err = cli("report", "--metrics-dir", tmp_path / "none", "--tables-dir", tmp_path / "t", "--figures-dir", tmp_path / "f")
    assert code != 0
    assert "no runs found" in one_error_line(err)
    assert not (tmp_path / "t").exists()


def test_tables_from_mlflow_equal_tables_from_records(tmp_path, monkeypatch):
    """Every table, built from MLflow runs of the same records (a smaller set: logging costs ~0.3 s a run)."""
    from robustify import track
    from robustify.records import iter_records

    metrics_dir = write_synthetic(tmp_path / "metrics", seeds=(0, 1), students=("resnet56_cifar",))
    built = T.build_tables(R.from_records(metrics_dir))
    assert all(not built[n].empty for n in T.TABLE_NAMES if n != "zero_shot.csv")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for path, rec in iter_records(metrics_dir):
        assert track.log_record(rec, path, experiment="report") is not None
    from_mlflow = T.build_tables(R.from_mlflow(experiment="report"))
    for name in T.TABLE_NAMES:
        pd.testing.assert_frame_equal(from_mlflow[name], built[name], check_dtype=False, obj=name)


def test_apt_without_a_teacher_pairs_with_every_teacher(tmp_path):
    """APT needs no teacher: an apt run with teacher None is the reference of ours with any teacher."""
    from robustify.records import make_record, write_record

    from _report_records import eval_metrics

    root = tmp_path / "metrics"
    for seed in (0, 1):
        for variant, teacher in (("full", "resnet20_cifar"), ("no_kd", None)):
            stem = f"resnet56_cifar_{teacher}_{SCHEME}_{variant}_s{seed}"
            method = "ours" if variant == "full" else "apt"
            write_record(root / "evaluate" / f"{stem}.json", make_record(
                "evaluate", method="ours", variant=variant, student="resnet56_cifar", teacher=teacher, scheme=SCHEME,
                seed=0, params_hash="e", metrics=eval_metrics(method, seed, True)))
    built = T.build_tables(R.from_records(root))
    kd = _row(built["kd_pairs.csv"], student="resnet56_cifar", teacher="resnet20_cifar")
    assert kd["gain_c"] == pytest.approx(1.0) and kd["n_seeds"] == 2
    c = _row(built["claims.csv"], claim="ours_gt_no_kd_shift", student="resnet56_cifar", teacher="resnet20_cifar")
    assert c["holds"] is True



def test_zero_shot_table_and_paper_suite_names(tmp_path):
    """Paper preset: suites named imagenet_* fill the same roles; a zero-shot student gets its Table 2 rows."""
    from robustify.records import make_record, write_record

    root = tmp_path / "metrics"
    paper = {"imagenet": 75.0, "imagenet_c": 50.0, "imagenet_r": 70.0, "imagenet_a": 40.0, "imagenet_v2": 68.0}
    write_record(root / "evaluate" / "zero_shot" / "vit_l14_clip.json", make_record(
        "evaluate", method="zero_shot", student="vit_l14_clip", seed=0, params_hash="e", metrics=dict(paper)))
    write_record(root / "evaluate" / "students" / f"vit_l14_clip_vit_b16_{SCHEME}_full_s0.json", make_record(
        "evaluate", method="ours", variant="full", student="vit_l14_clip", teacher="vit_b16", scheme=SCHEME, seed=0,
        params_hash="e", metrics={k: v + 1 for k, v in paper.items()}))
    built = T.build_tables(R.from_records(root))
    zs = built["zero_shot.csv"]
    assert list(zs["method"]) == ["zero_shot", "ours"]
    r = _row(zs, method="zero_shot")
    assert (r["clean"], r["c"], r["a"], r["v2"]) == (75.0, 50.0, 40.0, 68.0)
    assert r["shift_mean"] == pytest.approx(np.mean([50.0, 70.0, 40.0, 68.0]))
    assert list(built["main.csv"]["method"]) == ["ours"]  # zero-shot runs live in Table 2


def test_main_table_students_only_and_lp_student_original(tmp_path):
    """An ImageNet student's `original` is scored through its linear-probe head, so a row with only its
    clean accuracy borrows the linear probe's; a model evaluated only as a teacher gets no row."""
    from _report_records import eval_metrics
    from robustify.records import make_record, write_record

    root = write_synthetic(tmp_path / "metrics", seeds=[0])
    (root / "evaluate" / "original" / "efficientnet_lite0.json").unlink()  # only the baseline record's clean
    write_record(root / "evaluate" / "pretrained" / "resnet20_cifar.json", make_record(
        "evaluate", method="pretrained", student="resnet20_cifar", seed=0, params_hash="e",
        metrics=eval_metrics("original", 0, False), flops=0.04e9))
    main = T.build_tables(R.from_records(root))["main.csv"]
    assert "resnet20_cifar" not in set(main["student"])
    o = _row(main, method="original", student="efficientnet_lite0")
    lp = _row(main, method="linear_probe", student="efficientnet_lite0")
    for col in ("c", "r", "shift_mean", "transfer", "retention", "gflops"):
        assert o[col] == pytest.approx(lp[col]), col
    assert o["train_s_per_image"] == pytest.approx(0.0)  # the original is not trained
