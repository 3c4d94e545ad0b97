"""float32 vs bfloat16 inference on this CPU: the speed, and what bfloat16 would change in the tables.

The embedded default does its work at the CPU's float32 rate (README "Where the time went"), so a
faster run needs less work or lower precision. This measures the precision option on trained models
of a finished run without adopting it. Per model, its whole forward as a frozen TorchScript graph (what
evaluation runs) in float32, and the same with weights and activations in bfloat16 (oneDNN's
AVX512-BF16 / AMX kernels where the CPU has them), on the run's own evaluation data — the clean test
set and the CIFAR-10-C copies, capped per class:
- ms per image at evaluate.batch_size, 1 thread, median of interleaved repeats, and the ratio;
- accuracy in each precision, the largest change of one corruption cell, and the share of images
  whose prediction changes.

Needs a finished run (`make run` or a smoke run): its data/ and checkpoints. Run by hand:

    .venv/bin/python benchmarks/precision.py --root /path/to/run [--per-class 20] [--model CKPT ...]

Writes benchmarks/out/precision.json (`bf16_speedup_ratio` per model; collect.py merges it).
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from _timing import interleaved  # this folder is on sys.path when run as a script

DEFAULT_MODELS = ("pretrained:resnet56_cifar", "results/checkpoints/baselines/e2e/resnet56_cifar_s0.pt",
                  "results/checkpoints/linear_probe/efficientnet_lite0.pt",
                  "results/checkpoints/baselines/e2e/efficientnet_lite0_s0.pt")


def frozen(model: torch.nn.Module, x: torch.Tensor):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(model.eval(), x, check_trace=False))


@torch.no_grad()
def predictions(graph, preprocess, es, batch: int, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    preds, ys = [], []
    for xb, yb in es.batches(batch):
        logits = graph(preprocess(torch.from_numpy(xb)).to(dtype)).float()
        preds.append(es.project(logits).argmax(1).numpy() if es.project else logits.argmax(1).numpy())
        ys.append(np.asarray(yb))
    return np.concatenate(preds), np.concatenate(ys)


def bench_model(spec: str, root: Path, params, per_class: int, repeats: int) -> dict:
    from robustify.evaluate.runner import load_model
    from robustify.evaluate.suites import build_suites

    cfg = params.evaluate.model_copy(update={"per_class": per_class})
    pretrained = spec.removeprefix("pretrained:") if spec.startswith("pretrained:") else None
    loaded = load_model(None if pretrained else str(root / spec), pretrained, params)
    model, pre, batch = loaded.model.eval(), loaded.preprocess(), cfg.batch_size
    sets = build_suites(["clean", "c"], cfg, root / params.data.root, loaded.image_size)
    x0 = pre(torch.from_numpy(next(sets["clean"][0].batches(batch))[0]))
    graphs = {"float32": (frozen(model, x0), torch.float32),
              "bfloat16": (frozen(copy.deepcopy(model).to(torch.bfloat16), x0.bfloat16()), torch.bfloat16)}
    secs, ratio = interleaved({k: (lambda g=g, d=d: g(x0.to(d))) for k, (g, d) in graphs.items()}, repeats, "bfloat16")
    out: dict = {"model": spec, "image_size": loaded.image_size, "ms_per_image": {k: 1e3 * v / len(x0) for k, v in secs.items()},
                 "bf16_speedup_ratio": ratio["float32"], "accuracy": {}, "changed_pct": {}}
    cell_delta = []
    for suite, members in sets.items():
        hits = {k: [] for k in graphs}
        changed, n = 0, 0
        for es in members:
            p = {k: predictions(g, pre, es, batch, d) for k, (g, d) in graphs.items()}
            y = p["float32"][1]
            acc = {k: 100 * float((v[0] == y).mean()) for k, v in p.items()}
            for k in graphs:
                hits[k].append(acc[k])
            if suite == "c":
                cell_delta.append(abs(acc["bfloat16"] - acc["float32"]))
            changed += int((p["bfloat16"][0] != p["float32"][0]).sum())
            n += len(y)
        out["accuracy"][suite] = {k: float(np.mean(v)) for k, v in hits.items()}
        out["changed_pct"][suite] = 100 * changed / max(1, n)
    out["max_c_cell_delta_pt"] = float(max(cell_delta)) if cell_delta else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="a finished run's checkout (its params.yaml, data/ and checkpoints)")
    ap.add_argument("--model", nargs="*", default=list(DEFAULT_MODELS),
                    help="checkpoints relative to --root, or pretrained:<name>; missing ones are skipped")
    ap.add_argument("--per-class", type=int, default=20, help="images per class of each dataset (clean and every C cell)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/out/precision.json")
    args = ap.parse_args()
    from robustify.config import load_params

    torch.set_num_threads(args.threads)
    root = Path(args.root).resolve()
    params = load_params(root / "params.yaml")
    rows = []
    for spec in args.model:
        if not spec.startswith("pretrained:") and not (root / spec).is_file():
            print(f"skip {spec}: not in {root}")
            continue
        r = bench_model(spec, root, params, args.per_class, args.repeats)
        rows.append(r)
        acc = r["accuracy"]
        print(f"{spec}: {r['ms_per_image']['float32']:.3f} → {r['ms_per_image']['bfloat16']:.3f} ms/img "
              f"({r['bf16_speedup_ratio']:.2f}×); clean {acc['clean']['float32']:.2f} → {acc['clean']['bfloat16']:.2f}, "
              f"C {acc['c']['float32']:.2f} → {acc['c']['bfloat16']:.2f} (largest cell change {r['max_c_cell_delta_pt']:.2f} pt); "
              f"predictions changed: clean {r['changed_pct']['clean']:.2f}%, C {r['changed_pct']['c']:.2f}%")
    if not rows:
        raise SystemExit(f"no model found under {root}; run the workflow first or pass --model")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"threads": args.threads, "per_class": args.per_class, "models": rows}, indent=1))


if __name__ == "__main__":
    main()
