"""Device check of our corruption engine: CUDA vs CPU output (same seeds; PSNR per cell, both tables) and CUDA throughput.

    python benchmarks/corruptions_device_check.py DATA.npz   # DATA.npz: x32 (N,32,32,3) and x224 (M,224,224,3) uint8

Made for a lent GPU machine; run on the CPU-only machine it has nothing to check.
"""
import sys, time
import numpy as np
import torch
from robustify.corruptions import CORRUPTIONS, corrupt, image_seeds

d = np.load(sys.argv[1])
x32, x224 = d["x32"][:200], d["x224"][:16]
print(torch.__version__, torch.cuda.get_device_name(0), flush=True)


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-12))


worst = {}
for table in ("imagenet", "cifar"):
    for name in CORRUPTIONS:
        for s in range(1, 6):
            for x in (x32, x224):
                sd = image_seeds(0, np.arange(len(x)), name, s)
                a = corrupt(x, name, s, sd, table=table, device="cpu")
                b = corrupt(x, name, s, sd, table=table, device="cuda")
                dp = psnr(x, b) - psnr(x, a)
                key = (table, name, x.shape[1])
                worst[key] = max(worst.get(key, 0.0), abs(dp))
    for name in CORRUPTIONS:
        print(f"{table:8s} {name:18s} max |PSNR cuda - cpu| 32px {worst[(table, name, 32)]:.3f} dB  224px {worst[(table, name, 224)]:.3f} dB", flush=True)

xs = {32: np.concatenate([d["x32"]] * 10)[:1000], 224: d["x224"][:64]}
for size, x in xs.items():
    tot = 0.0
    for name in CORRUPTIONS:
        sd = image_seeds(0, np.arange(len(x)), name, 3)
        corrupt(x[:4], name, 3, sd[:4], table="imagenet", device="cuda")
        torch.cuda.synchronize()
        t = time.perf_counter()
        corrupt(x, name, 3, sd, table="imagenet", device="cuda")
        dt = time.perf_counter() - t
        tot += dt / len(x)
        print(f"cuda {size:3d}px {name:18s} {len(x) / dt:10.1f} img/s", flush=True)
    print(f"cuda {size:3d}px all 15: {tot * 1e3:.3f} ms/img", flush=True)
