"""Where a workflow run spent its time: Snakemake's per-job `benchmark:` files summed per rule.

Every rule writes logs/benchmarks/<stage>/<job>.tsv (wall seconds, CPU seconds, peak RSS). This sums
them per rule folder and prints a table plus the wall time of the whole run when given.

    python benchmarks/pipeline_times.py                       # in the checkout that ran the workflow
    python benchmarks/pipeline_times.py --root /path/to/run --wall 2700

Writes benchmarks/out/pipeline_times.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def collect(root: Path) -> pd.DataFrame:
    rows = []
    base = root / "logs" / "benchmarks"
    for tsv in sorted(base.rglob("*.tsv")):
        t = pd.read_csv(tsv, sep="\t")
        if t.empty:
            continue
        stage = tsv.relative_to(base).parts[0]
        group = "/".join(tsv.relative_to(base).parts[:2]) if stage in ("baselines", "evaluate") else stage
        rows.append({"stage": group.removesuffix(".tsv"), "job": tsv.stem, "wall_s": float(t["s"].iloc[-1]),
                     "cpu_s": float(t["cpu_time"].iloc[-1]), "max_rss_mb": float(t["max_rss"].iloc[-1])})
    return pd.DataFrame(rows, columns=["stage", "job", "wall_s", "cpu_s", "max_rss_mb"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="checkout that ran the workflow")
    ap.add_argument("--wall", type=float, default=None, help="wall seconds of the whole run (for the share column)")
    ap.add_argument("--out", default="benchmarks/out/pipeline_times.json")
    args = ap.parse_args()
    jobs = collect(Path(args.root))
    if jobs.empty:
        raise SystemExit(f"no benchmark files under {Path(args.root) / 'logs/benchmarks'}; run the workflow first")
    per = jobs.groupby("stage").agg(jobs=("job", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                    max_rss_mb=("max_rss_mb", "max")).sort_values("cpu_s", ascending=False)
    per["cpu_share_pct"] = 100 * per["cpu_s"] / per["cpu_s"].sum()
    print(per.round(1).to_string())
    total = {"jobs": int(per["jobs"].sum()), "job_wall_s": float(per["wall_s"].sum()), "job_cpu_s": float(per["cpu_s"].sum()),
             "run_wall_s": args.wall}
    print(f"\n{total['jobs']} jobs: {total['job_wall_s'] / 60:.1f} job-minutes wall, {total['job_cpu_s'] / 60:.1f} CPU-minutes"
          + (f"; run wall {args.wall / 60:.1f} min" if args.wall else ""))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"total": total, "per_stage": per.reset_index().to_dict(orient="records")}, indent=1))


if __name__ == "__main__":
    main()
