"""All runs as one flat DataFrame, from the JSON records or from MLflow — the two must agree."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from ..records import RUN_KEYS, iter_records
from ..track import flatten

ID_COLUMNS = [f"run.{k}" for k in RUN_KEYS]


def from_records(root: str | Path = "results/metrics") -> pd.DataFrame:
    rows = []
    for path, rec in iter_records(root):
        row = {f"run.{k}": rec["run"].get(k) for k in RUN_KEYS}
        row.update({k: v for k, v in flatten({"metrics": rec["metrics"], "timing": rec.get("timing") or {}}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if rec.get("flops") is not None:
            row["flops"] = rec["flops"]
        row["record_path"] = str(path)
        rows.append(row)
    return _normalise(pd.DataFrame(rows))


def from_mlflow(uri: Optional[str] = None, experiment: str = "robustify") -> pd.DataFrame:
    """The latest MLflow run per record path, in the same layout as `from_records`."""
    import mlflow

    from ..track import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(uri))
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="pandas")
    if runs.empty:
        return _normalise(pd.DataFrame())
    runs = runs.sort_values("start_time").drop_duplicates("tags.record_path", keep="last")
    cols = {"record_path": runs["tags.record_path"].values}
    for col in ID_COLUMNS:
        tag = f"tags.{col}"
        cols[col] = runs[tag].values if tag in runs else [None] * len(runs)
    for col in runs.columns:
        if col.startswith("metrics."):
            cols[col.removeprefix("metrics.")] = runs[col].values
    return _normalise(pd.DataFrame(cols))


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Same dtypes from both sources: ids as strings (None for missing), seed as int, values as float."""
    for col in ID_COLUMNS:
        if col not in df:
            df[col] = None
    df = df.astype({c: object for c in ID_COLUMNS})
    for col in ID_COLUMNS:
        df[col] = df[col].map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) or v == "None" else str(v))
    value_cols = [c for c in df.columns if c not in ID_COLUMNS and c != "record_path"]
    values = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce").astype(float) for c in value_cols}, index=df.index)
    df = pd.concat([df.drop(columns=value_cols), values], axis=1)
    return df.sort_values("record_path").reset_index(drop=True) if "record_path" in df else df
