"""Inference cost of ours (trunk once, heads re-sampled T times) vs one plain forward, on the same images.

Per student (resnet56_cifar at 32 px, efficientnet_lite0 at 96 px; split as params `distill`):
- wall time (median of interleaved repeats, 1 thread) of: plain = the original model's forward; ours = the one-pass
  evaluator's MC forward with T passes; naive = T complete forwards of the three-head student, and
  unsplit = trunk once + T × forward_heads (what the evaluator would do without splitting the heads);
- GFLOPs per image (torch.utils.flop_counter) of plain and ours;
- the same with the deterministic part as a frozen TorchScript graph (evaluate.freeze, the default);
- ours_shared: the same from the trunk's output (evaluate.share_trunk: every evaluation of a student
  after the first reads the trunk outputs from the cache; the read itself is not timed);
- extra model calls the ablations need: every rule is applied to the one OnePass, so the trunk,
  tunable and head calls are counted while the rules run (expected: zero).
Goal (issue 8): ours ≤ +10% FLOPs and ≤ 1.3× wall time for T=10.

    .venv/bin/python benchmarks/inference.py [--passes 10] [--repeats 5] [--out benchmarks/out/inference.json]
"""

from __future__ import annotations

import argparse
import sys

import torch

from _timing import interleaved  # this folder is on sys.path when run as a script


class CallCounter:
    """Counts trunk / tunable / head calls of a student by wrapping its interface methods."""

    def __init__(self, model):
        self.counts = {"forward_trunk": 0, "forward_tunable": 0, "forward_heads": 0, "head_pre_logits": 0, "head_classifier": 0}
        for name in ("forward_trunk", "forward_tunable", "forward_heads"):
            setattr(model, name, self._wrap(name, getattr(model, name)))
        for head in getattr(model, "heads", {}).values():
            head.pre_logits = self._wrap("head_pre_logits", head.pre_logits)
            head.classifier.register_forward_pre_hook(lambda *a: self._bump("head_classifier"))

    def _bump(self, key: str) -> None:
        self.counts[key] += 1

    def _wrap(self, name, fn):
        def wrapped(*a, **k):
            self._bump(name)
            return fn(*a, **k)

        return wrapped

    def snapshot(self) -> dict:
        return dict(self.counts)


def bench_student(name: str, size: int, batch: int, passes: int, repeats: int, params, head_depth=None) -> dict:
    from robustify.evaluate.flops import count_flops, inference_flops
    from robustify.evaluate.onepass import (OnePass, after_trunk, deterministic_part, iterate_arrays, mc_probs,
                                            run_onepass, summarize)
    from robustify.models.frozen import freeze_for_inference
    from robustify.evaluate.selection import RULES, dataset_metrics, select
    from robustify.models import Preprocess, create_model
    from robustify.models.student import create_student

    cfg = params.distill
    head_depth = cfg.head_depth if head_depth is None else head_depth
    torch.manual_seed(0)
    plain = create_model(name, pretrained=False, num_classes=10).eval()
    student = create_student(name, n_tunable_blocks=cfg.n_tunable_blocks[name], head_depth=head_depth,
                             dropout_p=cfg.dropout, pretrained=False, num_classes=10).eval()
    pre = Preprocess.for_model(name, size)
    x = pre(torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8))

    def naive():
        for _ in range(passes):
            student.forward_heads(student.forward_tunable(student.forward_trunk(x)), mc=True)

    def unsplit():
        h = student.forward_tunable(student.forward_trunk(x))
        for _ in range(passes):
            student.forward_heads(h, mc=True)

    with torch.no_grad():
        # the evaluator's default (evaluate.freeze): deterministic part as a frozen graph
        frozen_pre = freeze_for_inference(student, deterministic_part(student), x, name)
        frozen_plain = freeze_for_inference(plain, plain, x, name)
        z = student.forward_trunk(x)
        frozen_rest = freeze_for_inference(student, after_trunk(student), z, name)
        t, ratio = interleaved({"plain": lambda: plain(x), "ours": lambda: summarize(mc_probs(student, x, passes)),
                                "ours_frozen": lambda: summarize(mc_probs(student, x, passes, pre=frozen_pre)),
                                "plain_frozen": lambda: frozen_plain(x),
                                "ours_shared": lambda: summarize(mc_probs(student, z, passes, pre=frozen_rest)),
                                "unsplit_heads": unsplit}, repeats, "plain")
        t_naive, r_naive = interleaved({"plain": lambda: plain(x), "naive_T_forwards": naive}, max(1, repeats // 3), "plain")
        ratio.update(r_naive)
        f = inference_flops(student, x[:1], passes)
        f1 = inference_flops(student, x[:1], 1)
        f_plain_model = count_flops(lambda: plain(x[:1])) / 1e9

    # ablations: one pass, then every rule; count model calls made while the rules run
    counter = CallCounter(student)
    xs = torch.randint(0, 256, (64, size, size, 3), dtype=torch.uint8).numpy()
    ys = torch.randint(0, 10, (64,)).numpy()
    op: OnePass = run_onepass(student, pre, iterate_arrays(xs, ys, 64), passes, 10)
    during_pass = counter.snapshot()
    for rule in RULES:
        select(op, rule)
    dataset_metrics(op, shifted=True)
    after_rules = counter.snapshot()
    extra = {k: after_rules[k] - during_pass[k] for k in after_rules}

    return {
        "student": name, "image_size": size, "batch": batch, "passes": passes,
        "n_tunable_blocks": cfg.n_tunable_blocks[name], "head_depth": head_depth, "dropout_p": cfg.dropout,
        "ms_per_image": {**{k: 1e3 * v / batch for k, v in t.items()}, "naive_T_forwards": 1e3 * t_naive["naive_T_forwards"] / batch},
        "wall_ratio": ratio,  # median over repeats of (variant / plain) timed back to back
        "frozen_speedup_ratio": ratio["ours"] / ratio["ours_frozen"],  # ours eager / ours frozen (evaluate.freeze)
        "shared_trunk_speedup_ratio": ratio["ours_frozen"] / ratio["ours_shared"],  # evaluate.share_trunk, after the first
        "gflops": {"plain_model": f_plain_model, "plain_student": f["gflops_plain"], "ours": f["gflops_ours"],
                   "ours_T1": f1["gflops_ours"]},
        # total = three heads' private blocks (T-independent) + the T-1 extra dropout→classifier passes
        "flops_overhead": {"vs_plain_student": f["overhead"], "vs_plain_model": f["gflops_ours"] / f_plain_model - 1,
                           "three_heads": f1["overhead"], "mc_passes": (f["gflops_ours"] - f1["gflops_ours"]) / f["gflops_plain"]},
        "model_calls_one_pass": during_pass,
        "extra_model_calls_for_all_rules": extra,
        "rules": list(RULES),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=None, help="images per batch (default: params evaluate.batch_size)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="benchmarks/out/inference.json")
    args = ap.parse_args(argv)

    from robustify.config import load_params
    from robustify.io import write_json

    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    lite_size = params.models.image_size.get("efficientnet_lite0", 96)
    bs = args.batch or params.evaluate.batch_size  # the evaluator's batch: per-image costs depend on it (CPU caches)
    rows = [bench_student("resnet56_cifar", 32, bs, args.passes, args.repeats, params),
            bench_student("efficientnet_lite0", lite_size, bs, args.passes, args.repeats, params)]
    if params.distill.head_depth != 0:  # linear heads (head_depth 0): the paper's setting of a light prediction part
        rows += [bench_student("resnet56_cifar", 32, bs, args.passes, args.repeats, params, head_depth=0),
                 bench_student("efficientnet_lite0", lite_size, bs, args.passes, args.repeats, params, head_depth=0)]
    goal = {"flops_overhead_max": 0.10, "wall_ratio_max": 1.3}
    for r in rows:
        r["meets_goal"] = r["flops_overhead"]["vs_plain_student"] <= goal["flops_overhead_max"] and r["wall_ratio"]["ours"] <= goal["wall_ratio_max"]
        print(f"{r['student']} @ {r['image_size']}px, head_depth {r['head_depth']}, T={r['passes']}, batch {r['batch']}, {args.threads} thread(s):")
        ms = r["ms_per_image"]
        print(f"  wall ms/img  plain {ms['plain']:.3f}  ours {ms['ours']:.3f}  (×{r['wall_ratio']['ours']:.2f})"
              f"  unsplit heads ×{r['wall_ratio']['unsplit_heads']:.2f}  naive T forwards ×{r['wall_ratio']['naive_T_forwards']:.2f}")
        print(f"  frozen graph (evaluate.freeze): plain {ms['plain_frozen']:.3f}  ours {ms['ours_frozen']:.3f}"
              f"  → ours eager/frozen ×{r['frozen_speedup_ratio']:.2f}")
        print(f"  shared trunk (evaluate.share_trunk): ours from the trunk's output {ms['ours_shared']:.3f}"
              f"  → frozen/shared ×{r['shared_trunk_speedup_ratio']:.2f} for every student of a trunk after the first")
        g = r["gflops"]
        o = r["flops_overhead"]
        print(f"  GFLOPs/img   plain {g['plain_student']:.4f}  ours {g['ours']:.4f}  (+{100 * o['vs_plain_student']:.1f}%:"
              f" three heads' private blocks +{100 * o['three_heads']:.1f}%, MC passes +{100 * o['mc_passes']:.2f}%)")
        print(f"  model calls for one pass {r['model_calls_one_pass']}; extra for all {len(r['rules'])} rules "
              f"{r['extra_model_calls_for_all_rules']}; goal met: {r['meets_goal']}")
    write_json(args.out, {"goal": goal, "threads": args.threads, "torch": torch.__version__, "results": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
