"""Merge benchmarks/out/*.json into results/benchmarks.json: every ratio in one place (issue 12).

Each benchmark writes its own JSON (corruptions, distill, inference, lp_image_size); this keeps them
whole under "benchmarks" and lifts every number whose key path mentions a ratio, an overhead or extra model calls into a flat
"ratios" table, named `<benchmark>.<path>` with list entries named by their student/name/size, and
picks the README's figures into "headline".

    python benchmarks/collect.py [--out-dir benchmarks/out] [--to results/benchmarks.json]  # also prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("ratio", "overhead", "extra_model_calls")  # what counts as a ratio-like figure
# the figures the README table shows (the full flat table stays in results/benchmarks.json)
HEADLINE = ("overall.ratio", "ratio_e2e_over_ours", "wall_ratio.ours", "flops_overhead.vs_plain_student",
            "extra_model_calls_for_all_rules", "ratio_vs_smallest", "frozen_speedup_ratio", "shared_trunk_speedup_ratio")
LABELS = ("student", "name", "corruption", "scheme", "image_size", "size")


def _walk(obj, path: str, out: dict, in_ratio: bool) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{path}.{k}" if path else str(k), out, in_ratio or any(m in str(k).lower() for m in KEYS))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            label = next((str(v[k]) for k in LABELS if isinstance(v, dict) and k in v), str(i))
            if isinstance(v, dict) and "student" in v and "image_size" in v:
                label = f"{v['student']}@{v['image_size']}"
            _walk(v, f"{path}[{label}]", out, in_ratio)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and in_ratio:
        out[path] = float(obj)


def ratios_of(data: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    _walk(data, "", out, False)
    return out


def collect(out_dir: str | Path) -> dict:
    """{"benchmarks": {name: json}, "ratios": {name.path: value}, "skipped": [unreadable files], ...}."""
    benches, ratios, skipped = {}, {}, []
    for f in sorted(Path(out_dir).glob("*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            skipped.append(f.name)
            continue
        benches[f.stem] = data
        ratios.update({f"{f.stem}.{k}": v for k, v in ratios_of(data).items()})
    return {"collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
            "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0], "benchmarks": benches, "ratios": ratios,
            "headline": headline(ratios),
            "skipped": skipped}


def headline(ratios: dict[str, float]) -> dict[str, float]:
    """The README figures; extra model calls are summed per benchmark row (expected 0)."""
    out: dict[str, float] = {}
    for k, v in ratios.items():
        if "extra_model_calls_for_all_rules" in k:
            row = k.split(".extra_model_calls_for_all_rules")[0] + ".extra_model_calls_for_all_rules"
            out[row] = out.get(row, 0.0) + v
        elif any(h in k for h in HEADLINE):
            out[k] = v
    return out


def markdown(merged: dict, full: bool = False) -> str:
    rows = merged["ratios"] if full else merged["headline"]
    lines = ["| benchmark figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3g} |" for k, v in rows.items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--to", default=str(ROOT / "results" / "benchmarks.json"))
    ap.add_argument("--all", action="store_true", help="print every ratio, not only the headline figures")
    args = ap.parse_args()
    merged = collect(args.out_dir)
    to = Path(args.to)
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = to.with_name(to.name + ".tmp")
    tmp.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    tmp.replace(to)
    print(markdown(merged, full=args.all))
    print(f"\n{len(merged['ratios'])} ratios from {len(merged['benchmarks'])} benchmarks -> {to}"
          + (f" (unreadable: {', '.join(merged['skipped'])})" if merged["skipped"] else ""))


if __name__ == "__main__":
    main()
