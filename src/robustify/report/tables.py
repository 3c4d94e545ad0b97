"""The paper's tables as CSV, built from the flat run frame (records or MLflow) — never from models.

Every table is a mean over seeds with `n_seeds` and a standard deviation over seeds (`*_std`, empty
with one seed) of its headline column(s). Names under results/tables/ are fixed:

main.csv                 Tables 1/3   one row per method × student (× teacher)
zero_shot.csv            Table 2      zero-shot students (paper preset; header only otherwise)
aug_schemes.csv          Table 4      teacher scheme → teacher clean/c, ours clean/c/r/sketch/objectnet_c
ablations.csv            Table 6      selection rules / heads / no_kd on every dataset + shift mean
fcorrect.csv             Table 7      share routed to the right head per rule, clean vs shifted
kd_pairs.csv             Table 8      ours vs no_kd per student × teacher
teacher_student_grid.csv Figure 5     gain over APT per student × teacher (teacher none = APT)
robustness_analysis.csv  Figures 2/3  accuracy per model, dataset and severity
claims.csv               the paper's claims judged on seed means (see claims.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from ..io import atomic_path
from . import models as M

DATASETS = ["clean", "c", "r", "sketch", "objectnet", "objectnet_c"]
SHIFTS = ["c", "r", "sketch", "objectnet", "objectnet_c"]
METHOD_ORDER = ["original", "zero_shot", "linear_probe", "e2e", "wise_e2e", "vpt", "apt", "ours"]

MAIN_COLUMNS = ["method", "student", "teacher", "clean", "c", "r", "sketch", "objectnet", "objectnet_c",
                "shift_mean", "transfer", "retention", "train_s_per_image", "gflops", "n_seeds", "c_std", "shift_mean_std"]
ZERO_SHOT_COLUMNS = ["method", "student", "teacher", "clean", "c", "r", "sketch", "objectnet", "objectnet_c", "a", "v2",
                     "shift_mean", "n_seeds", "shift_mean_std"]
AUG_COLUMNS = ["student", "teacher", "scheme", "teacher_clean", "teacher_c", "clean", "c", "r", "sketch", "objectnet_c",
               "n_seeds", "c_std"]
ABLATION_ROWS = ["ours", "no_kld", "no_uncertainty", "max_logit", "no_kd", "clean_head", "robust_head", "combined_head", "oracle"]
ABLATION_COLUMNS = ["student", "teacher", "scheme", "ablation", *DATASETS, "shift_mean", "n_seeds", "shift_mean_std"]
FCORRECT_RULES = ["ours", "no_kld", "no_uncertainty", "max_logit"]
FCORRECT_COLUMNS = ["student", "teacher", "scheme", "method", "rule", *[f"fcorrect_{d}" for d in DATASETS],
                    "fcorrect_clean_mean", "fcorrect_shifted_mean", "n_seeds", "fcorrect_shifted_mean_std"]
KD_COLUMNS = ["student", "teacher", "scheme", "ours_clean", "ours_c", "ours_shift_mean", "no_kd_clean", "no_kd_c",
              "no_kd_shift_mean", "gain_c", "gain_shift_mean", "n_seeds", "gain_c_std", "gain_shift_mean_std"]
GRID_COLUMNS = ["student", "teacher", "scheme", "c", "r", "gain_c_over_apt", "gain_r_over_apt", "n_seeds", "gain_c_std"]
ROBUSTNESS_COLUMNS = ["model", "setting", "student", "teacher", "scheme", "dataset", "severity", "accuracy", "n_seeds",
                      "accuracy_std"]


# ---------------------------------------------------------------------------------------------
# helpers


def over_seeds(df: pd.DataFrame, keys: list[str], values: list[str], spread: list[str] = ()) -> pd.DataFrame:
    """Mean of `values` over seeds per `keys`, `n_seeds`, and the std over seeds of `spread` (`<col>_std`)."""
    if df.empty:
        return pd.DataFrame(columns=keys + values + ["n_seeds"] + [f"{c}_std" for c in spread])
    g = df.groupby(keys, sort=True, dropna=False)
    out = g[values].mean()
    out["n_seeds"] = g["seed"].nunique()
    for c in spread:
        out[f"{c}_std"] = g[c].std(ddof=1)  # NaN with one seed
    out = out.reset_index()
    for c in values + [f"{c}_std" for c in spread]:
        out[c] = out[c].astype(float)
    out["n_seeds"] = out["n_seeds"].astype(int)
    return out


def _method_rank(method: str) -> int:
    for i, m in enumerate(METHOD_ORDER):
        if method == m or method.startswith(m + "_"):
            return i
    return len(METHOD_ORDER)


def _frame(columns: list[str], df: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in _TEXT else float) for c in columns})
    for c in columns:
        if c not in df:
            df[c] = np.nan
    return df[columns].reset_index(drop=True)


_TEXT = {"method", "student", "teacher", "scheme", "ablation", "rule", "model", "setting", "dataset", "severity",
         "claim", "comparison", "holds", "detail"}


def _main_scheme(m: pd.DataFrame, scheme: Optional[str]) -> pd.DataFrame:
    """Distilled rows (ours/apt) of the main scheme only; other methods have no scheme."""
    if scheme is None:
        return m
    distilled = m["method"].isin(["ours", "apt"])
    return m[~distilled | (m["scheme"] == scheme) | (m["scheme"] == "")]


def _with_shift_mean(m: pd.DataFrame) -> pd.DataFrame:
    m = m.copy()
    m["shift_mean"] = M.shift_mean(m, SHIFTS)
    return m


# ---------------------------------------------------------------------------------------------
# tables


def main_table(m: pd.DataFrame, scheme: Optional[str] = None) -> pd.DataFrame:
    """Tables 1/3: every baseline and ours per student; ours/apt of the main teacher scheme.

    `m` is the per-model frame of `models.models`, or the flat run frame itself (converted here).
    """
    if "run.stage" in m:
        m = M.models(m)
    m = m[~m["method"].isin(["teacher", "unknown"]) & ~m["method"].str.startswith("zero_shot")]
    # a pretrained model evaluated only as a teacher (no student row of its own) is not a student
    only_teacher = (m["method"] == "original") & ~m["student"].isin(m.loc[m["method"] != "original", "student"]) \
        & m["student"].isin(m["teacher"])
    m = m[~only_teacher]
    if m.empty:
        return _frame(MAIN_COLUMNS)
    m = _with_shift_mean(_main_scheme(m, scheme))
    values = DATASETS + ["shift_mean", "transfer", "retention", "train_s_per_image", "gflops"]
    t = over_seeds(m, ["method", "student", "teacher"], values, ["c", "shift_mean"])
    t["_o"] = t["method"].map(_method_rank)
    t = t.sort_values(["student", "_o", "method", "teacher"])
    return _frame(MAIN_COLUMNS, t)


def zero_shot_table(m: pd.DataFrame) -> pd.DataFrame:
    """Table 2: every method of the students that have a zero-shot run (paper preset: CLIP zero-shot and
    ours/baselines built on its prompt-embedding head); header only when no zero-shot run exists."""
    zs = set(m.loc[m["method"].str.startswith("zero_shot"), "student"])
    m = m[m["student"].isin(zs) & (m["method"] != "teacher")]
    if m.empty:
        return _frame(ZERO_SHOT_COLUMNS)
    m = m.copy()
    m["shift_mean"] = M.shift_mean(m, SHIFTS + ["a", "v2"])
    t = over_seeds(m, ["method", "student", "teacher"], DATASETS + ["a", "v2", "shift_mean"], ["shift_mean"])
    t["_o"] = t["method"].map(_method_rank)
    return _frame(ZERO_SHOT_COLUMNS, t.sort_values(["student", "_o", "method", "teacher"]))


def aug_schemes_table(m: pd.DataFrame) -> pd.DataFrame:
    """Table 4: per teacher scheme, the robust teacher's clean/c and ours' accuracy."""
    ours = m[m["method"] == "ours"]
    if ours.empty:
        return _frame(AUG_COLUMNS)
    t = over_seeds(ours, ["student", "teacher", "scheme"], ["clean", "c", "r", "sketch", "objectnet_c"], ["c"])
    teach = m[m["method"] == "teacher"]
    if not teach.empty:
        tt = over_seeds(teach, ["teacher", "scheme"], ["clean", "c"]).rename(columns={"clean": "teacher_clean", "c": "teacher_c"})
        t = t.merge(tt[["teacher", "scheme", "teacher_clean", "teacher_c"]], on=["teacher", "scheme"], how="left")
    return _frame(AUG_COLUMNS, t.sort_values(["student", "teacher", "scheme"]))


_HEAD_RULES = {"clean_head": "clean", "robust_head": "robust", "combined_head": "combined"}


def ablation_rows(m: pd.DataFrame) -> pd.DataFrame:
    """Per seed: every ablation row of Table 6 on every dataset (selection rules and heads of ours, no_kd = apt)."""
    ours, apt = m[m["method"] == "ours"], m[m["method"] == "apt"]
    parts = []
    ids = ["student", "teacher", "scheme", "seed"]
    for row in ABLATION_ROWS:
        if row == "no_kd":
            src = apt[ids].copy()
            for d in DATASETS:
                src[d] = M.rule_accuracy(apt, "ours", d).fillna(apt[d])
        else:
            rule = _HEAD_RULES.get(row, row)
            src = ours[ids].copy()
            for d in DATASETS:
                src[d] = M.rule_accuracy(ours, rule, d)
                if row == "ours":
                    src[d] = src[d].fillna(ours[d])
        src["ablation"] = row
        parts.append(src)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if rows.empty:
        return rows
    rows = rows.dropna(subset=DATASETS, how="all")
    rows["shift_mean"] = M.shift_mean(rows, SHIFTS)
    return rows


def ablations_table(m: pd.DataFrame) -> pd.DataFrame:
    """Table 6: rows ours, no_kld, no_uncertainty, max_logit, no_kd, three heads, oracle."""
    rows = ablation_rows(m)
    if rows.empty:
        return _frame(ABLATION_COLUMNS)
    t = over_seeds(rows, ["student", "teacher", "scheme", "ablation"], DATASETS + ["shift_mean"], ["shift_mean"])
    t["_o"] = t["ablation"].map(ABLATION_ROWS.index)
    return _frame(ABLATION_COLUMNS, t.sort_values(["student", "teacher", "scheme", "_o"]))


def fcorrect_table(m: pd.DataFrame) -> pd.DataFrame:
    """Table 7: Fcorrect per routing rule and dataset, for ours and no_kd (apt) models."""
    src = m[m["method"].isin(["ours", "apt"])]
    parts = []
    for rule in FCORRECT_RULES:
        r = src[["student", "teacher", "scheme", "method", "seed"]].copy()
        r["rule"] = rule
        for d in DATASETS:
            r[f"fcorrect_{d}"] = M.rule_fcorrect(src, rule, d)
        parts.append(r)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if rows.empty:
        return _frame(FCORRECT_COLUMNS)
    rows = rows.dropna(subset=[f"fcorrect_{d}" for d in DATASETS], how="all")
    if rows.empty:
        return _frame(FCORRECT_COLUMNS)
    rows["fcorrect_clean_mean"] = rows["fcorrect_clean"]
    rows["fcorrect_shifted_mean"] = rows[[f"fcorrect_{d}" for d in SHIFTS]].mean(axis=1)
    vals = [f"fcorrect_{d}" for d in DATASETS] + ["fcorrect_clean_mean", "fcorrect_shifted_mean"]
    t = over_seeds(rows, ["student", "teacher", "scheme", "method", "rule"], vals, ["fcorrect_shifted_mean"])
    t["_o"] = t["rule"].map(FCORRECT_RULES.index)
    t["_m"] = t["method"].map({"ours": 0, "apt": 1})
    return _frame(FCORRECT_COLUMNS, t.sort_values(["student", "teacher", "scheme", "_m", "_o"]))


def _paired(m: pd.DataFrame, a: str, b: str, keys: list[str]) -> pd.DataFrame:
    """Rows of method `a` joined to method `b` on keys + seed (suffixes _a, _b); where `b` did not run
    with the same teacher (APT needs none), `b`'s mean over its teachers for the same student, scheme, seed."""
    A, B = _with_shift_mean(m[m["method"] == a]), _with_shift_mean(m[m["method"] == b])
    vals = [c for c in ("clean", "c", "r", "shift_mean") if c in B]
    exact = A.merge(B[keys + ["seed"] + vals], on=keys + ["seed"], suffixes=("_a", "_b"))
    rest = A.merge(exact[keys + ["seed"]], on=keys + ["seed"], how="left", indicator=True)
    rest = rest[rest["_merge"] == "left_only"].drop(columns="_merge")
    loose = [k for k in keys if k != "teacher"]
    anyb = B.groupby(loose + ["seed"])[vals].mean().reset_index()
    return pd.concat([exact, rest.merge(anyb, on=loose + ["seed"], suffixes=("_a", "_b"))], ignore_index=True)


def kd_pairs_table(m: pd.DataFrame) -> pd.DataFrame:
    """Table 8: ours vs w/o KD per student × teacher (× scheme); gains paired by seed."""
    keys = ["student", "teacher", "scheme"]
    p = _paired(m, "ours", "apt", keys)
    if p.empty:
        return _frame(KD_COLUMNS)
    p = p.rename(columns={"clean_a": "ours_clean", "c_a": "ours_c", "shift_mean_a": "ours_shift_mean",
                          "clean_b": "no_kd_clean", "c_b": "no_kd_c", "shift_mean_b": "no_kd_shift_mean"})
    p["gain_c"] = p["ours_c"] - p["no_kd_c"]
    p["gain_shift_mean"] = p["ours_shift_mean"] - p["no_kd_shift_mean"]
    vals = ["ours_clean", "ours_c", "ours_shift_mean", "no_kd_clean", "no_kd_c", "no_kd_shift_mean", "gain_c", "gain_shift_mean"]
    t = over_seeds(p, keys, vals, ["gain_c", "gain_shift_mean"])
    return _frame(KD_COLUMNS, t)


def teacher_student_grid(m: pd.DataFrame) -> pd.DataFrame:
    """Figure 5: per student × teacher (× scheme) c and r of ours and the gain over APT (teacher none).

    APT's reference is its mean over seeds and teacher wildcards per student and scheme (APT uses no
    teacher; where APT did not run with a scheme, APT of the student with any scheme), so gains are
    differences of seed means; `gain_c_std` is ours' std over seeds (APT's reference is a fixed mean).
    """
    ours, apt = m[m["method"] == "ours"], m[m["method"] == "apt"]
    if ours.empty and apt.empty:
        return _frame(GRID_COLUMNS)
    by_scheme = apt.groupby(["student", "scheme"])[["c", "r"]].mean()
    by_student = apt.groupby("student")[["c", "r"]].mean()

    def with_ref(t: pd.DataFrame) -> pd.DataFrame:
        """APT of the same student and scheme; of the same student (any scheme) where that did not run."""
        ref = [by_scheme.loc[(s, k)] if (s, k) in by_scheme.index else
               (by_student.loc[s] if s in by_student.index else pd.Series({"c": np.nan, "r": np.nan}))
               for s, k in zip(t["student"], t["scheme"])]
        t["c_apt"] = [float(r["c"]) for r in ref]
        t["r_apt"] = [float(r["r"]) for r in ref]
        return t

    t = with_ref(over_seeds(ours, ["student", "teacher", "scheme"], ["c", "r"], ["c"]))
    none = with_ref(over_seeds(apt.assign(teacher="none"), ["student", "teacher", "scheme"], ["c", "r"], ["c"]))
    t = pd.concat([none, t], ignore_index=True).rename(columns={"c_std": "gain_c_std"})
    t["gain_c_over_apt"] = t["c"] - t["c_apt"]
    t["gain_r_over_apt"] = t["r"] - t["r_apt"]
    t["_o"] = (t["teacher"] != "none").astype(int)
    return _frame(GRID_COLUMNS, t.sort_values(["student", "scheme", "_o", "teacher"]))


def _model_label(method: str, student: str, teacher: str, scheme: str) -> str:
    if method == "teacher":
        return f"{teacher} ({scheme})"
    if method in ("ours", "apt"):
        return f"{student} {method} ← {teacher}" + (f" ({scheme})" if scheme else "")
    return f"{student} {method}"


def robustness_analysis(m: pd.DataFrame) -> pd.DataFrame:
    """Figures 2/3: per model (mean over seeds) accuracy per dataset (severity 'all') and per severity."""
    if m.empty:
        return _frame(ROBUSTNESS_COLUMNS)
    ids = ["method", "student", "teacher", "scheme", "seed"]
    parts = []
    for d in DATASETS:
        r = m[ids].copy()
        r["dataset"], r["severity"], r["accuracy"] = d, "all", m[d]
        parts.append(r)
        if d in ("c", "objectnet_c"):
            for s, acc in M.severities(m, d).items():
                r = m[ids].copy()
                r["dataset"], r["severity"], r["accuracy"] = d, str(s), acc
                parts.append(r)
    rows = pd.concat(parts, ignore_index=True).dropna(subset=["accuracy"])
    if rows.empty:
        return _frame(ROBUSTNESS_COLUMNS)
    t = over_seeds(rows, ["method", "student", "teacher", "scheme", "dataset", "severity"], ["accuracy"], ["accuracy"])
    t["model"] = [_model_label(*a) for a in zip(t["method"], t["student"], t["teacher"], t["scheme"])]
    t["setting"] = t["method"]
    t["_d"] = t["dataset"].map(DATASETS.index)
    t["_s"] = t["severity"].map(lambda s: 0 if s == "all" else int(s))
    t["_o"] = t["method"].map(_method_rank)
    return _frame(ROBUSTNESS_COLUMNS, t.sort_values(["_o", "model", "_d", "_s"]))


# ---------------------------------------------------------------------------------------------
# all tables


def build_tables(runs: pd.DataFrame, cfg=None) -> dict[str, pd.DataFrame]:
    """Every table of the report from the flat run frame; `cfg` is params.report (defaults when None)."""
    from ..config import ReportConfig
    from .claims import claims_table

    cfg = cfg or ReportConfig()
    m = M.models(runs)
    builders: dict[str, Callable[[], pd.DataFrame]] = {
        "main.csv": lambda: main_table(m, cfg.main_scheme),
        "zero_shot.csv": lambda: zero_shot_table(m),
        "aug_schemes.csv": lambda: aug_schemes_table(m),
        "ablations.csv": lambda: ablations_table(m),
        "fcorrect.csv": lambda: fcorrect_table(m),
        "kd_pairs.csv": lambda: kd_pairs_table(m),
        "teacher_student_grid.csv": lambda: teacher_student_grid(m),
        "robustness_analysis.csv": lambda: robustness_analysis(m),
        "claims.csv": lambda: claims_table(m, cfg),
    }
    return {name: build() for name, build in builders.items()}


TABLE_NAMES = ("main.csv", "zero_shot.csv", "aug_schemes.csv", "ablations.csv", "fcorrect.csv", "kd_pairs.csv",
               "teacher_student_grid.csv", "robustness_analysis.csv", "claims.csv")


def check_names(names) -> list[str]:
    """Table file names, validated against TABLE_NAMES (a typo names the valid ones)."""
    from ..errors import ConfigError

    bad = [n for n in names if n not in TABLE_NAMES]
    if bad:
        raise ConfigError(f"unknown table {bad}; tables: {', '.join(TABLE_NAMES)}")
    return list(names)


def write_tables(runs: pd.DataFrame, out_dir: str | Path, cfg=None, only=None, exclude=()) -> dict[str, pd.DataFrame]:
    """Build every table and write them (or `only` those, minus `exclude`) as CSV under `out_dir`
    (atomically, 4 significant digits); returns every built table."""
    out_dir = Path(out_dir)
    names = [n for n in check_names(only or TABLE_NAMES) if n not in check_names(exclude)]
    built = build_tables(runs, cfg)
    for name, table in built.items():
        if name not in names:
            continue
        with atomic_path(out_dir / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4g")
    return built
