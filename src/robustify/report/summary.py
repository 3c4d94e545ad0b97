"""results/tables/summary.json: the headline numbers for `dvc metrics show` (from the built tables)."""

from __future__ import annotations

import math

import pandas as pd

HEADLINE = ["clean", "c", "r", "shift_mean", "train_s_per_image"]


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)


def summary(tables: dict[str, pd.DataFrame]) -> dict:
    """{claims: {held, failed, not_measured, total}, main: {student: {method: {clean, c, r, shift_mean, …}}}}."""
    claims = tables["claims.csv"]
    holds = claims["holds"] if not claims.empty else pd.Series(dtype=object)
    out: dict = {"claims": {"held": int((holds == True).sum()), "failed": int((holds == False).sum()),  # noqa: E712
                            "not_measured": int(holds.isna().sum()), "total": int(len(holds))}}
    main: dict = {}
    for _, r in tables["main.csv"].iterrows():
        name = r["method"] + (f"<-{r['teacher']}" if r["method"] in ("ours", "apt") and r["teacher"] else "")
        main.setdefault(r["student"], {})[name] = {k: _num(r[k]) for k in HEADLINE}
    out["main"] = main
    return out
