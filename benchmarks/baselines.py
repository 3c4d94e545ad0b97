"""Training cost per image seen of the trained baselines, side by side in one run (1 thread).

E2E and VPT run the same step as `train.teacher.robustify_teacher` (crop/flip + AugMix views already
made, CE + λ·JSD on [source, view 1, view 2], SGD step): E2E updates every weight, VPT the prompt and
classifier (the trunk is frozen but, for padding prompts, still back-propagated through to the input).
`vpt_micro` is VPT as the training loop runs it: forwards of ≤ teachers.micro_batch images with
gradients accumulated (its frozen BatchNorm makes that the same update). View generation is timed separately (both methods pay it). Ratios in one run are what to read:
absolute times move with the load on the shared cores.

    .venv/bin/python benchmarks/baselines.py [--students resnet56_cifar efficientnet_lite0] [--batch 128] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))

from _timing import median_time  # noqa: E402


def bench_student(name: str, params, batch: int, steps: int, head: str | None) -> dict:
    import numpy as np

    from robustify.augment.augmix import jsd_loss
    from robustify.augment.dataset import TripletViews
    from robustify.augment.views import AugmentSettings
    from robustify.commands.baseline import original_model
    from robustify.data import cifar10
    from robustify.models import Preprocess, get_spec
    from robustify.train import vpt

    cfg = params.baselines
    x, y = (a[:batch] for a in (cifar10("train", params.data.val_per_class).x, cifar10("train", params.data.val_per_class).y))
    views = TripletViews(x, y, cfg.scheme, 0, AugmentSettings.from_config(params.teachers))
    idx = np.arange(len(y))
    view_s = median_time(lambda: views.batch(idx, 0), max(1, steps // 2))
    v, labels = views.batch(idx, 0)
    out = {"student": name, "batch": batch, "views_per_image": int(v.shape[0]), "view_ms_per_train_image": 1000 * view_s / batch}
    loss_fn = jsd_loss(cfg.jsd_lambda)
    micro = max(1, params.teachers.micro_batch // int(v.shape[0]))  # source images per forward (VPT's loop)
    for method in ("e2e", "vpt", "vpt_micro"):
        model, size = original_model(params, name, head)
        if method.startswith("vpt"):
            model = vpt.build(model, get_spec(name).family, size, cfg.vpt_tokens, cfg.vpt_pad)
        pre = Preprocess.for_model(name, size)
        parts = np.array_split(idx, -(-batch // micro)) if method == "vpt_micro" else [idx]
        inputs = [(pre(torch.from_numpy(v[:, p].reshape(-1, *v.shape[2:]))), torch.from_numpy(labels[p]), len(p) / batch)
                  for p in parts]
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        model.train()

        def step():
            opt.zero_grad(set_to_none=True)
            for inp, lab, share in inputs:  # vpt_micro: gradient accumulation over micro-batches (teachers.micro_batch)
                (loss_fn(model(inp), lab) * share).backward()
            opt.step()

        s = median_time(step, steps)
        out[f"{method}_ms_per_image_seen"] = 1000 * s / (batch * int(v.shape[0]))
        out[f"{method}_trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out["vpt_over_e2e"] = out["vpt_ms_per_image_seen"] / out["e2e_ms_per_image_seen"]
    out["vpt_micro_speedup_ratio"] = out["vpt_ms_per_image_seen"] / out["vpt_micro_ms_per_image_seen"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", nargs="+", default=["resnet56_cifar"])
    ap.add_argument("--head", default=None, help="linear-probe head for an ImageNet student")
    ap.add_argument("--batch", type=int, default=None, help="source images per step (default: params baselines.vpt_batch_size)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "baselines.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from robustify.commands.common import keep_freed_memory
    from robustify.config import load_params

    keep_freed_memory()  # as the pipeline's jobs run (robustify CLI)

    params = load_params(ROOT / "params.yaml")
    rows = [bench_student(s, params, args.batch or params.baselines.vpt_batch_size, args.steps, args.head) for s in args.students]
    load = os.getloadavg()[0]
    for r in rows:
        r["load_1min"] = load
        print(json.dumps(r))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
