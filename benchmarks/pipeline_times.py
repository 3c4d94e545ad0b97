"""Where a workflow run spent its time: per-job wall, CPU and peak memory summed per rule.

Every rule writes logs/benchmarks/<stage>/<job>.tsv (Snakemake's `benchmark:`) and logs/<stage>/<job>.log.
CPU seconds come from the log's last `resources:` line, which `robustify` writes when a command
finishes (getrusage: exact). Snakemake's own cpu_time is a sample taken every 30 s after a job's first
15 s, so it misses up to 30 s per job; it is used only for jobs whose log has no such line (runs from
before the line existed), and `cpu_exact` counts the jobs measured exactly. This sums per rule folder
and prints a table plus the wall time of the whole run when given, and how busy the cores were.

    python benchmarks/pipeline_times.py                       # in the checkout that ran the workflow
    python benchmarks/pipeline_times.py --root /path/to/run --wall 2700

Writes benchmarks/out/pipeline_times.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd


RESOURCES = re.compile(r"resources: cpu_s=([0-9.]+) wall_s=([0-9.]+)")


def exact_cpu(log: Path):
    """CPU seconds from the last `resources:` line of a job's log, or None."""
    if not log.is_file():
        return None
    hits = RESOURCES.findall(log.read_text(errors="replace"))
    return float(hits[-1][0]) if hits else None


def collect(root: Path) -> pd.DataFrame:
    rows = []
    base = root / "logs" / "benchmarks"
    for tsv in sorted(base.rglob("*.tsv")):
        t = pd.read_csv(tsv, sep="\t")
        if t.empty:
            continue
        rel = tsv.relative_to(base)
        stage = rel.parts[0]
        group = "/".join(rel.parts[:2]) if stage in ("baselines", "evaluate") else stage
        cpu = exact_cpu(root / "logs" / rel.with_suffix(".log"))
        rows.append({"stage": group.removesuffix(".tsv"), "job": tsv.stem, "wall_s": float(t["s"].iloc[-1]),
                     "cpu_s": cpu if cpu is not None else float(t["cpu_time"].iloc[-1]),
                     "cpu_exact": cpu is not None, "max_rss_mb": float(t["max_rss"].iloc[-1])})
    return pd.DataFrame(rows, columns=["stage", "job", "wall_s", "cpu_s", "cpu_exact", "max_rss_mb"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="checkout that ran the workflow")
    ap.add_argument("--wall", type=float, default=None, help="wall seconds of the whole run (for the share column)")
    ap.add_argument("--cores", type=int, default=2, help="cores the run was given (snakemake --cores)")
    ap.add_argument("--out", default="benchmarks/out/pipeline_times.json")
    args = ap.parse_args()
    jobs = collect(Path(args.root))
    if jobs.empty:
        raise SystemExit(f"no benchmark files under {Path(args.root) / 'logs/benchmarks'}; run the workflow first")
    per = jobs.groupby("stage").agg(jobs=("job", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                    cpu_exact=("cpu_exact", "sum"), max_rss_mb=("max_rss_mb", "max"))
    per = per.sort_values("cpu_s", ascending=False)
    per["cpu_exact"] = per["cpu_exact"].astype(int)
    per["cpu_share_pct"] = 100 * per["cpu_s"] / per["cpu_s"].sum()
    print(per.round(1).to_string())
    total = {"jobs": int(per["jobs"].sum()), "job_wall_s": float(per["wall_s"].sum()), "job_cpu_s": float(per["cpu_s"].sum()),
             "cpu_exact_jobs": int(per["cpu_exact"].sum()), "run_wall_s": args.wall, "cores": args.cores}
    line = (f"\n{total['jobs']} jobs: {total['job_wall_s'] / 60:.1f} job-minutes wall, {total['job_cpu_s'] / 60:.1f} CPU-minutes"
            f" ({total['cpu_exact_jobs']} jobs' CPU exact" + (", the rest Snakemake's sample)" if total["cpu_exact_jobs"] < total["jobs"] else ")"))
    if args.wall:
        # the share of the run's core-seconds the jobs kept busy; what is left is idle cores (or Snakemake)
        total["cores_busy_pct"] = 100 * total["job_cpu_s"] / (args.wall * args.cores)
        line += f"; run wall {args.wall / 60:.1f} min, {args.cores} cores {total['cores_busy_pct']:.0f}% busy with jobs"
    print(line)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"total": total, "per_stage": per.reset_index().to_dict(orient="records")}, indent=1))


if __name__ == "__main__":
    main()
