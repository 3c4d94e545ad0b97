"""Images/second of our corruption engine vs the reference package, per corruption and overall.

Same images for both engines, in one run, at 32×32 (CIFAR-10 test) and 224×224 (the ImageNet sample
images, 96 px, upsampled bicubic). The reference (imagecorruptions-imaug) runs image by image in this
one Python process (numpy; OpenCV may use its own threads for resize/filter2D, reported below); ours
runs batched in torch with --threads intra-op threads (numba loops get the same count).

    python benchmarks/corruptions.py                   # ~ a few minutes: 200 images @32, 16 @224
    python benchmarks/corruptions.py --n32 1000 --n224 64 --severity 3 --threads 2
    taskset -c 0,1 python benchmarks/corruptions.py --data DATA.npz --threads 2   # elsewhere: 2 pinned cores

Writes benchmarks/out/corruptions.json. Timings on a shared machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def images_224(n: int) -> np.ndarray:
    from PIL import Image

    from robustify.data.datasets import imagenet_samples

    src = imagenet_samples().x[:n]
    return np.stack([np.asarray(Image.fromarray(a).resize((224, 224), Image.BICUBIC)) for a in src])


def time_ours(x, name, severity, seeds, repeat: int, device: str = "cpu") -> float:
    from robustify.corruptions import corrupt

    corrupt(x[:2], name, severity, seeds[:2], table="imagenet", device=device)  # warm-up: tables, textures, numba
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        corrupt(x, name, severity, seeds, table="imagenet", device=device)  # returns numpy: synchronised
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_reference(x, name, severity, seeds) -> float:
    from robustify.corruptions import corrupt

    corrupt(x[:1], name, severity, seeds[:1], table="imagenet", engine="reference")  # numba compile
    t = time.perf_counter()
    corrupt(x, name, severity, seeds, table="imagenet", engine="reference")
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n32", type=int, default=200, help="images at 32 px (both engines)")
    p.add_argument("--n224", type=int, default=16, help="images at 224 px (both engines)")
    p.add_argument("--severity", type=int, default=3)
    p.add_argument("--threads", default="auto",
                   help="torch threads of our engine; auto = all cores, or 1 when the 1-min load already fills them "
                        "(torch with 2 threads on a saturated 2-core machine runs several times slower than with 1)")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats of our engine (median)")
    p.add_argument("--corruptions", nargs="+", default=None)
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 224], choices=[32, 224])
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "corruptions.json"))
    p.add_argument("--data", default=None, help="an .npz with x32 / x224 arrays instead of the data mirror")
    p.add_argument("--device", default="cpu", help="device of our engine (the reference is always CPU)")
    args = p.parse_args(argv)
    os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

    import cv2
    import torch

    from robustify.corruptions import CORRUPTIONS, image_seeds
    from robustify.data.datasets import cifar10
    from robustify.io import write_json

    cores = os.cpu_count() or 1
    threads = int(args.threads) if args.threads != "auto" else (1 if os.getloadavg()[0] >= cores else cores)
    torch.set_num_threads(threads)
    names = args.corruptions or list(CORRUPTIONS)
    sets = {}
    given = np.load(args.data) if args.data else None
    if 32 in args.sizes:
        sets[32] = (given["x32"] if given is not None else cifar10("test").x)[: args.n32]
    if 224 in args.sizes:
        sets[224] = given["x224"][: args.n224] if given is not None else images_224(args.n224)
    load0 = os.getloadavg()
    results = {}
    for size, x in sets.items():
        rows = {}
        for name in names:
            seeds = image_seeds(0, np.arange(len(x)), name, args.severity)
            t_ref = time_reference(x, name, args.severity, seeds)
            t_ours = time_ours(x, name, args.severity, seeds, args.repeat, args.device)
            rows[name] = {"reference_img_s": len(x) / t_ref, "ours_img_s": len(x) / t_ours, "ratio": t_ref / t_ours,
                          "reference_ms_per_img": 1e3 * t_ref / len(x), "ours_ms_per_img": 1e3 * t_ours / len(x)}
            print(f"  {size:3d} px {name:18s} ref {rows[name]['reference_img_s']:9.1f} img/s  ours {rows[name]['ours_img_s']:9.1f} img/s"
                  f"  ×{rows[name]['ratio']:.1f}", file=sys.stderr, flush=True)
        ref_ms = sum(r["reference_ms_per_img"] for r in rows.values())
        ours_ms = sum(r["ours_ms_per_img"] for r in rows.values())
        results[size] = {"n_images": len(x), "per_corruption": rows,
                         "overall": {"reference_ms_per_img": ref_ms, "ours_ms_per_img": ours_ms, "ratio": ref_ms / ours_ms}}
    info = {
        "severity": args.severity, "torch_threads_ours": torch.get_num_threads(), "reference_processes": 1,
        "reference_numpy_threads": "1 (per-image numpy; no BLAS in the hot paths)", "cv2_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "device_ours": args.device, "torch": torch.__version__, "python": platform.python_version(), "command": " ".join(["python", *sys.argv]),
    }
    write_json(args.out, {"info": info, "results": {str(k): v for k, v in results.items()}})

    print(f"\ncorruption speed, severity {args.severity}: reference = imagecorruptions-imaug per image, 1 process "
          f"(cv2 threads {info['cv2_threads']}); ours = torch on {args.device}, {info['torch_threads_ours']} thread(s); "
          f"load avg {load0[0]:.1f} → {info['loadavg_end'][0]:.1f} on {os.cpu_count()} cores")
    sizes = list(results)
    head = f"| {'corruption':18s} |" + "".join(f" ref {s}px img/s | ours {s}px img/s | ratio |" for s in sizes)
    print(head)
    print("|" + "---|" * (1 + 3 * len(sizes)))
    for name in names:
        line = f"| {name:18s} |"
        for s in sizes:
            r = results[s]["per_corruption"][name]
            line += f" {r['reference_img_s']:14.1f} | {r['ours_img_s']:15.1f} | {r['ratio']:5.1f}× |"
        print(line)
    line = f"| {'all 15 (ms/img)':18s} |"
    for s in sizes:
        o = results[s]["overall"]
        line += f" {o['reference_ms_per_img']:11.2f} ms | {o['ours_ms_per_img']:12.2f} ms | {o['ratio']:5.1f}× |"
    print(line)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
