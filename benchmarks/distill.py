"""Training cost per image: our distillation (cached frozen trunk) vs end-to-end AugMix fine-tuning.

Same student, same images, one run, 1 thread. Each side runs its real training step as the pipeline does:
- ours: `distill.step_loss` (shared tunable part + three heads, DESIGN.md §1 loss) on cached trunk
  outputs and cached teacher logits; per training image: the clean image and one augmented view;
- e2e: the whole student in train mode with the pipeline's E2E loss (`baselines.scheme: augmix`:
  CE + λ·JSD, AugMix paper), all weights updated; per training image: the clean image and two AugMix views;
- cache: the one-off passes per training image of a run with `epochs` epochs and K views per image —
  trunk on the clean image and its K views, T_orig, the teacher on the K views — spread over the
  epochs. View generation is timed separately: both methods make augmented views, so it is reported
  but charged to neither side.
Two ratios: per training image (each method's whole step; the goal of issue 7: e2e / ours ≥ 10) and
per image pass (step time / images forwarded: 2 for ours, 3 for e2e — the unit of the records'
`images_seen`).

    .venv/bin/python benchmarks/distill.py [--students resnet56_cifar efficientnet_lite0] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))

from _timing import median_time  # noqa: E402


def bench_student(name: str, params, steps: int, batch: int, n_tunable=None, head_depth=None) -> dict:
    from robustify.augment.augmix import jsd_loss
    from robustify.augment.views import AugmentSettings, make_views
    from robustify.data import cifar10
    from robustify.models.frozen import InferenceGraph
    from robustify.models.preprocess import Preprocess
    from robustify.models.registry import create_model, get_spec
    from robustify.models.student import create_student
    from robustify.train.cache import batched, original_logits
    from robustify.train.distill import step_loss
    from robustify.train.losses import LossWeights

    cfg = params.distill
    k_tune = cfg.n_tunable_blocks[name] if n_tunable is None else n_tunable
    depth = cfg.head_depth if head_depth is None else head_depth
    size = params.models.image_size.get(name, get_spec(name).image_size)
    k_views, epochs = cfg.views_per_image, cfg.epochs
    x = cifar10("train", params.data.val_per_class).x[:batch]
    y = torch.from_numpy(cifar10("train", params.data.val_per_class).y[:batch])
    settings = AugmentSettings.from_config(params.teachers)
    t0 = time.perf_counter()
    views = make_views(x, "augmix", 7, settings=settings)
    augmix_s = (time.perf_counter() - t0) / batch
    t0 = time.perf_counter()
    make_views(x, "augmix_deepaugment", 7, settings=settings)
    amda_s = (time.perf_counter() - t0) / batch

    pre = Preprocess.for_model(name, size)
    xc, xv = pre(torch.from_numpy(x)), pre(torch.from_numpy(views))  # the training steps' inputs
    student = create_student(name, n_tunable_blocks=k_tune, head_depth=depth,
                             dropout_p=cfg.dropout, placeholder_heads=True)
    teacher = create_model("resnet20_cifar", pretrained=True).eval()
    pre_t = Preprocess.for_model("resnet20_cifar")
    w = LossWeights(cfg.alpha, cfg.tau, cfg.gamma, cfg.lam)

    # one-off cache passes (per image of the batch), as `train.cache` builds them: frozen graphs on uint8
    # images in batches of distill.cache_batch_size (the first call traces the graph: warm-up)
    cb, reps = cfg.cache_batch_size, max(2, steps // 2)
    student.eval()
    trunk = InferenceGraph(student, lambda im: student.forward_trunk(pre(im)), "trunk")
    tgraph = InferenceGraph(teacher, lambda im: teacher(pre_t(im)), "teacher")
    z_np = batched(trunk, x, cb)
    batched(tgraph, views, cb)
    trunk_s = median_time(lambda: batched(trunk, x, cb), reps) / batch
    teacher_s = median_time(lambda: batched(tgraph, views, cb), reps) / batch
    torig_s = median_time(lambda: [original_logits(student, torch.from_numpy(z_np[i:i + cb])) for i in range(0, batch, cb)], reps) / batch
    with torch.no_grad():
        z_c, z_v = student.forward_trunk(xc).half(), student.forward_trunk(xv).half()
        t_orig = original_logits(student, z_c.float())
        t_small = teacher(pre_t(torch.from_numpy(views)))
    cache_once = (1 + k_views) * trunk_s + torig_s + k_views * teacher_s  # per training image, per run
    cache_per_epoch = cache_once / epochs

    # ours: the real training step (B clean + B views)
    opt = torch.optim.AdamW(student.trainable_parameters(), lr=1e-4)

    def ours_step():
        student.train()
        loss, _ = step_loss(student, z_c, z_v, y, t_orig, t_small, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ours = median_time(ours_step, steps) / batch  # per training image

    # end-to-end AugMix fine-tuning of the whole student, the pipeline's loss (B clean + 2B views)
    model = create_model(name, pretrained=(get_spec(name).load_pretrained is not None), num_classes=10)
    opt2 = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
    inp = torch.cat([xc, xv, pre(torch.from_numpy(make_views(x, "augmix", 8, settings=settings)))])
    loss_fn = jsd_loss(params.baselines.jsd_lambda)

    def e2e_step():
        model.train()
        loss = loss_fn(model(inp), y)
        opt2.zero_grad(set_to_none=True)
        loss.backward()
        opt2.step()

    e2e = median_time(e2e_step, steps) / batch  # per training image
    return {
        "student": name, "image_size": size, "batch": batch, "n_tunable_blocks": k_tune,
        "head_depth": depth, "views_per_image": k_views, "epochs": epochs,
        "ours_ms_per_training_image": 1e3 * ours, "e2e_ms_per_training_image": 1e3 * e2e,
        "ours_ms_per_image_pass": 1e3 * ours / 2, "e2e_ms_per_image_pass": 1e3 * e2e / 3,
        "cache_ms_per_training_image_once": 1e3 * cache_once, "cache_ms_per_training_image_epoch": 1e3 * cache_per_epoch,
        "view_ms_per_image": {"augmix": 1e3 * augmix_s, "augmix_deepaugment": 1e3 * amda_s},
        "ratio_e2e_over_ours": e2e / ours, "ratio_e2e_over_ours_with_cache": e2e / (ours + cache_per_epoch),
        "ratio_e2e_over_ours_per_image_pass": (e2e / 3) / (ours / 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", nargs="+", default=["resnet56_cifar", "efficientnet_lite0"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-tunable", type=int, nargs="+", default=[None], help="override params distill.n_tunable_blocks (several: one row each)")
    ap.add_argument("--head-depth", type=int, default=None, help="override params distill.head_depth")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "distill.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from robustify.commands.common import keep_freed_memory
    from robustify.config import load_params
    from robustify.data import mirror

    keep_freed_memory()  # as the pipeline's jobs run (robustify CLI)

    params = load_params(ROOT / "params.yaml")
    mirror.configure(params.data.mirror, params.data.cache)
    rows = []
    for name, k in [(n, k) for n in args.students for k in args.n_tunable]:
        r = bench_student(name, params, args.steps, args.batch, k, args.head_depth)
        rows.append(r)
        print(f"{name} @ {r['image_size']} px, k={r['n_tunable_blocks']} d={r['head_depth']}, per training image: "
              f"ours {r['ours_ms_per_training_image']:.3f} ms, e2e {r['e2e_ms_per_training_image']:.3f} ms -> "
              f"{r['ratio_e2e_over_ours']:.1f}x; with the one-off cache ({r['cache_ms_per_training_image_epoch']:.3f} ms "
              f"per training image and epoch) {r['ratio_e2e_over_ours_with_cache']:.1f}x; per image pass "
              f"{r['ratio_e2e_over_ours_per_image_pass']:.1f}x; views (both methods) augmix "
              f"{r['view_ms_per_image']['augmix']:.2f}, augmix_deepaugment {r['view_ms_per_image']['augmix_deepaugment']:.2f} ms/img", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"load_avg_1min": os.getloadavg()[0], "threads": 1, "results": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
