"""One row per trained model and seed: evaluation accuracy joined to training cost.

Accuracy lives in the evaluate record, training seconds per image in the training record (baselines,
distill, teachers). Both are keyed by (student, teacher, scheme, method, seed) after naming them in
the tables' words: distill variant `full` is `ours`, `no_kd` is `apt`; an evaluated pretrained model
is `original`; a robust teacher is `teacher` (its own name in `teacher`, no student). Baselines other
than APT are keyed without teacher and scheme (one model per student and seed). The training
seed of an evaluate record is read from its file stem (`…_s<seed>`) where there is one — the
evaluate record's own `run.seed` is the evaluation seed (dropout masks).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["student", "teacher", "scheme", "method", "seed"]
# role (the tables' column) -> metric keys that fill it: embedded suite name, then paper suite name
ROLES = {
    "clean": ("clean", "imagenet"),
    "c": ("c", "imagenet_c"),
    "r": ("r", "imagenet_r"),
    "sketch": ("sketch", "imagenet_sketch"),
    "objectnet": ("objectnet", "imagenet_objectnet"),
    "objectnet_c": ("objectnet_c", "imagenet_objectnet_c"),
    "a": ("a", "imagenet_a"),
    "v2": ("v2", "imagenet_v2"),
}
SHIFTS = ["c", "r", "sketch", "objectnet", "objectnet_c", "a", "v2"]
PROBES = ["transfer", "retention"]
TRAIN_STAGES = ("baselines", "distill", "teachers")
DISTILLED = ("ours", "apt")  # keyed by teacher and scheme too
_SEED = re.compile(r"_s(\d+)$")


def method_name(method, variant) -> str:
    """The table name of a run: ours / apt for distillation variants, wise_e2e_<α> per α, else the method."""
    if variant == "full":
        return "ours"
    if variant == "no_kd":
        return "apt"
    if method == "pretrained":
        return "original"
    if method == "robustify_teacher":
        return "teacher"
    if method == "wise_e2e" and variant not in (None, ""):
        return f"wise_e2e_{variant}"
    return str(method) if method is not None else "unknown"


def _stem_seed(path) -> float:
    m = _SEED.search(Path(str(path)).stem)
    return float(m.group(1)) if m else np.nan


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series(np.nan, index=df.index, dtype=float)


def _role(df: pd.DataFrame, role: str) -> pd.Series:
    out = pd.Series(np.nan, index=df.index, dtype=float)
    for key in ROLES[role]:
        out = out.fillna(_col(df, f"metrics.{key}"))
    return out


def _base(df: pd.DataFrame) -> dict:
    method = [method_name(m, v) for m, v in zip(df["run.method"], df["run.variant"])]
    teacher_rows = pd.Series([x == "teacher" for x in method], index=df.index)
    out = {"stage": df["run.stage"], "method": pd.Series(method, index=df.index, dtype=object),
           "student": df["run.student"].where(~teacher_rows, None), "teacher": df["run.teacher"], "scheme": df["run.scheme"]}
    for c in ("student", "teacher", "scheme"):
        out[c] = out[c].fillna("").astype(str)
    # a baseline is one model per student and seed: its augmentation scheme (E2E, VPT) is a setting,
    # which its evaluate record may not carry, so it is no part of the key
    baseline = ~out["method"].isin(DISTILLED + ("teacher",))
    out["teacher"] = out["teacher"].where(~baseline, "")
    out["scheme"] = out["scheme"].where(~baseline, "")
    out["record_path"] = df["record_path"]
    return out


def models(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (student, teacher, scheme, method, seed): accuracy per role (%), probes, Fcorrect, cost.

    Evaluate records win over training records for accuracy; training records give s/image (and
    accuracy where no evaluation exists, e.g. a teacher's own CIFAR-10-C estimate, scaled to %).
    Every nested metric of the evaluate record (`metrics.suites.*`, `metrics.cost.*`) is kept.
    """
    if runs.empty or "run.stage" not in runs:
        return pd.DataFrame(columns=KEYS + list(ROLES) + PROBES + ["train_s_per_image", "gflops"])
    ev = runs[runs["run.stage"] == "evaluate"].copy()  # copies: one block, not a fragmented frame
    tr = runs[runs["run.stage"].isin(TRAIN_STAGES)].copy()

    # training rows
    t = _base(tr)
    t["seed"] = pd.to_numeric(tr["run.seed"], errors="coerce")
    scale = np.where(tr["run.stage"] == "teachers", 100.0, 1.0)  # teacher records store fractions
    t["clean"] = _role(tr, "clean") * scale
    t["c"] = _role(tr, "c").fillna(_col(tr, "metrics.c_mean")) * scale
    t["train_s_per_image"] = _col(tr, "timing.s_per_image")
    t = pd.DataFrame(t, index=tr.index)

    # evaluation rows
    e = _base(ev)
    seed = pd.Series([_stem_seed(p) for p in ev["record_path"]], index=ev.index, dtype=float)
    keyed = t.dropna(subset=["seed"]).groupby(["student", "teacher", "scheme", "method"])["seed"].agg(lambda s: sorted(set(s)))
    run_seed = pd.to_numeric(ev["run.seed"], errors="coerce")
    for i in seed.index[seed.isna()]:
        k = (e["student"][i], e["teacher"][i], e["scheme"][i], e["method"][i])
        seeds = keyed.get(k, [])
        seed[i] = seeds[0] if len(seeds) == 1 else run_seed[i]
    e["seed"] = seed
    for role in ROLES:
        e[role] = _role(ev, role)
    for p in PROBES:
        e[p] = _col(ev, f"metrics.{p}")
    e["fcorrect_clean"] = _col(ev, "metrics.fcorrect_clean")
    e["fcorrect_shifted"] = _col(ev, "metrics.fcorrect_shifted")
    e["gflops"] = _col(ev, "flops") / 1e9
    nested = [c for c in ev.columns if c.startswith(("metrics.suites.", "metrics.cost."))]
    e = pd.concat([pd.DataFrame(e, index=ev.index), ev[nested]], axis=1)

    both = pd.concat([e.assign(_src=0), t.assign(_src=1)], ignore_index=True).copy()
    both["seed"] = both["seed"].fillna(-1).astype(int)
    both = both.sort_values(["_src", "record_path"])
    value_cols = [c for c in both.columns if c not in KEYS + ["_src", "stage", "record_path"]]
    out = both.groupby(KEYS, sort=True)[value_cols].first().reset_index()  # first non-null: evaluation wins
    vals = pd.DataFrame({c: pd.to_numeric(out[c], errors="coerce").astype(float) for c in value_cols})
    return _original_is_linear_probe(pd.concat([out[KEYS], vals], axis=1))


def _original_is_linear_probe(m: pd.DataFrame) -> pd.DataFrame:
    """An ImageNet student is scored through its linear-probe head, so its `original` model *is* the
    linear probe: missing accuracies, probes and GFLOPs of `original` come from that student's
    `linear_probe` row (its training cost stays the original's: none)."""
    lp = m[m["method"] == "linear_probe"].groupby("student").first()
    rows = m.index[(m["method"] == "original") & m["student"].isin(lp.index)]
    fill = [c for c in m.columns if c not in KEYS and c != "train_s_per_image"]
    for i in rows:
        m.loc[i, fill] = m.loc[i, fill].fillna(lp.loc[m.at[i, "student"], fill])
    return m


def shift_mean(df: pd.DataFrame, roles=SHIFTS) -> pd.Series:
    """Mean over the shift roles measured anywhere in `df` (rows missing one of them get NaN)."""
    present = [r for r in roles if r in df and df[r].notna().any()]
    if not present:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return df[present].mean(axis=1, skipna=False)


def rule_accuracy(m: pd.DataFrame, rule: str, role: str) -> pd.Series:
    """Accuracy (%) of selection rule `rule` on the suite of `role`, from the nested evaluate metrics."""
    out = pd.Series(np.nan, index=m.index, dtype=float)
    for key in ROLES[role]:
        out = out.fillna(_col(m, f"metrics.suites.{key}.accuracy.{rule}"))
    return out


def rule_fcorrect(m: pd.DataFrame, rule: str, role: str) -> pd.Series:
    out = pd.Series(np.nan, index=m.index, dtype=float)
    for key in ROLES[role]:
        out = out.fillna(_col(m, f"metrics.suites.{key}.fcorrect.{rule}"))
    return out


def severities(m: pd.DataFrame, role: str, rule: str = "ours") -> dict[int, pd.Series]:
    """Accuracy (%) per severity of a corrupted suite (c, objectnet_c) for rule `rule`."""
    out: dict[int, pd.Series] = {}
    for key in ROLES[role]:
        pat = re.compile(rf"^metrics\.suites\.{re.escape(key)}\.by_severity\.(\d+)\.accuracy\.{re.escape(rule)}$")
        for c in m.columns:
            mm = pat.match(c)
            if mm:
                s = int(mm.group(1))
                out[s] = out[s].fillna(m[c]) if s in out else m[c].astype(float)
    return dict(sorted(out.items()))
