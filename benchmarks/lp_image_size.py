"""Student image size for the linear probe: feature-extraction cost per image at each size, one run.

Accuracy per size comes from `robustify linear-probe --image-size N` records (README table); this
benchmark measures the cost side on the same images, interleaved, so the ratios survive a noisy
machine. Usage: python benchmarks/lp_image_size.py [--sizes 32 64 96 128] [--images 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

from robustify.data import cifar10  # noqa: E402
from robustify.models import Preprocess, create_model  # noqa: E402
from robustify.train.features import pooled_features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", default="efficientnet_lite0")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96, 128])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/out/lp_image_size.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.from_numpy(cifar10("test").x[: args.images])
    model = create_model(args.student, pretrained=True)
    fn = pooled_features(model)
    pres = {s: Preprocess.for_model(args.student, s) for s in args.sizes}
    times = {s: [] for s in args.sizes}
    with torch.no_grad():
        for s in args.sizes:  # warm-up
            fn(pres[s](x[: args.batch]))
        for _ in range(args.repeats):
            for s in args.sizes:  # interleaved so load spikes hit every size alike
                t0 = time.perf_counter()
                for i in range(0, len(x), args.batch):
                    fn(pres[s](x[i:i + args.batch]))
                times[s].append((time.perf_counter() - t0) / len(x))
    base = min(times[args.sizes[0]])
    rows = {s: {"ms_per_image": 1e3 * min(t), "ratio_vs_smallest": min(t) / base} for s, t in times.items()}
    print(f"{args.student} feature extraction, {args.images} images, batch {args.batch}, {args.threads} torch thread(s), best of {args.repeats}")
    print(f"{'size':>6} {'ms/img':>8} {'× vs ' + str(args.sizes[0]) + 'px':>10}")
    for s, r in rows.items():
        print(f"{s:>6} {r['ms_per_image']:8.2f} {r['ratio_vs_smallest']:10.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"student": args.student, "threads": args.threads, "sizes": rows}, indent=1))


if __name__ == "__main__":
    main()
