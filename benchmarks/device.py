"""params `device` on a GPU machine: the teacher loop (ResNet-56, AugMix views made on the host, as the
pipeline makes them) and frozen-graph inference (the evaluator's and the caches' path), CPU vs CUDA in
one run; per-image times and their ratio. Made for a lent GPU machine; without CUDA it says so and stops.

    python benchmarks/device.py [--images 1024] [--eval-images 4096] [--out benchmarks/out/device.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1024, help="training images (one epoch, batch 128)")
    ap.add_argument("--eval-images", type=int, default=4096)
    ap.add_argument("--out", default="benchmarks/out/device.json")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (run this on a GPU machine)")
        return 0
    from robustify import device
    from robustify.config import TeachersConfig
    from robustify.models import Preprocess, create_model
    from robustify.train import teacher as T

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(max(a.images, a.eval_images), 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=len(x)).astype(np.int64)
    cfg = TeachersConfig(epochs=1, lr=0.005, batch_size=128)  # random init: 0.05 diverged
    res: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
                 "cpu_count": os.cpu_count(), "train_images": a.images, "eval_images": a.eval_images}
    for where in ("cpu", "cuda"):
        device.use(where)
        torch.manual_seed(0)
        model = create_model("resnet56_cifar", num_classes=10)
        t0 = time.perf_counter()
        out = T.robustify_teacher("resnet56_cifar", "augmix", 0, cfg, x[:a.images], y[:a.images],
                                  Path(f"/tmp/bench_device_{where}.pt"), model=model, progress=False)
        torch.cuda.synchronize()
        res[f"train_ms_per_image_{where}"] = 1e3 * (time.perf_counter() - t0) / out.images_seen
        clf = T.Classifier(out.model, Preprocess.for_model("resnet56_cifar"), batch=256 if where == "cuda" else 32)
        clf.predict(x[:512])  # trace + warm-up
        t0 = time.perf_counter()
        clf.predict(x[:a.eval_images])
        res[f"eval_ms_per_image_{where}"] = 1e3 * (time.perf_counter() - t0) / a.eval_images
        print(where, {k: round(v, 4) for k, v in res.items() if k.endswith(where)}, flush=True)
    res["train_speedup_ratio"] = res["train_ms_per_image_cpu"] / res["train_ms_per_image_cuda"]
    res["eval_speedup_ratio"] = res["eval_ms_per_image_cpu"] / res["eval_ms_per_image_cuda"]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
