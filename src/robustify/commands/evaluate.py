"""robustify evaluate: one MC-dropout pass per dataset → every selection rule, Fcorrect, u/KL
diagnostics, transfer/retention probes and FLOPs, in one record per (model, suite set)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

NAME = "evaluate"
HELP = "evaluate a model on shift suites: all head-selection rules, Fcorrect, transfer, retention, FLOPs"
log = logging.getLogger("robustify.evaluate")


def add_arguments(p) -> None:
    from .common import add_params_args

    add_params_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="CKPT", help="a distilled student (robustify distill), a linear-probe head, a robust teacher "
                     "or a single-head checkpoint {'student', 'state_dict'}")
    src.add_argument("--pretrained", metavar="NAME", help="a registered model with its pretrained classifier (e.g. resnet56_cifar)")
    p.add_argument("--suite", action="append", default=None, metavar="S",
                   help="suite to run (repeatable or comma-separated): clean, c, r, sketch, objectnet, objectnet_c, "
                        "imagenet*, transfer, retention; default: params evaluate.suites, or none when --data is given")
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="a user dataset: .npz with x (N,H,W,3 uint8) and y, or an image folder root/<class>/*.jpg (repeatable)")
    p.add_argument("--classes", default="cifar10", help="label space of --data: 'cifar10' or comma-separated class names")
    p.add_argument("--model-id", default=None, help="name of this model in output paths (default: checkpoint stem / model name)")
    p.add_argument("--out-dir", default=None, help="per-sample files (default results/eval/<model-id>/)")
    p.add_argument("--record", default=None, help="record (default results/metrics/evaluate/<model-id>.json)")


def _suites(args, params) -> list[str]:
    from ..config import EMBEDDED_SUITES, PAPER_SUITES, PROBE_SUITES
    from ..errors import ConfigError

    if args.suite is None:
        return [] if args.data else list(params.evaluate.suites)
    names = [s.strip() for arg in args.suite for s in arg.split(",") if s.strip()]
    valid = EMBEDDED_SUITES + PAPER_SUITES + PROBE_SUITES
    names = [s for s in names if s != "none"]
    for s in names:
        if s not in valid:
            import difflib

            guess = difflib.get_close_matches(s, valid, n=1)
            raise ConfigError(f"unknown suite '{s}'; " + (f"did you mean '{guess[0]}'?" if guess else f"suites: {', '.join(valid)}"))
    return names


def _classes(spec: str) -> tuple:
    from ..data.datasets import CIFAR10_CLASSES
    from ..errors import ConfigError

    if spec == "cifar10":
        return CIFAR10_CLASSES
    names = tuple(c.strip() for c in spec.split(",") if c.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"--classes '{spec}': give 'cifar10' or at least two distinct comma-separated class names")
    return names


def run(args) -> None:
    from .common import check_writable, load, publish

    params = load(args)
    cfg = params.evaluate
    from ..config import params_hash
    from ..evaluate.runner import evaluate_model, load_model
    from ..records import make_record

    suites = _suites(args, params)
    classes = _classes(args.classes)
    if not suites and not args.data:
        from ..errors import ConfigError

        raise ConfigError("nothing to evaluate: give --suite or --data")
    loaded = load_model(args.model, args.pretrained, params)
    model_id = args.model_id or loaded.model_id
    out_dir = Path(args.out_dir or f"results/eval/{model_id}")
    record_path = Path(args.record or f"results/metrics/evaluate/{model_id}.json")
    check_writable(out_dir / "x", record_path)

    t0 = time.perf_counter()
    result = evaluate_model(loaded, suites, cfg, params, out_dir, data=args.data, classes=classes)
    seconds = time.perf_counter() - t0
    n_images = sum(m["n"] for m in result.metrics["datasets"].values())
    record = make_record(
        "evaluate", seed=cfg.seed, params_hash=params_hash({"evaluate": cfg.model_dump(mode="json"), "model": loaded.describe()}),
        metrics=result.metrics, flops=result.metrics["cost"]["gflops_ours"] * 1e9,  # FLOPs per image, ours with T passes
        timing={"eval_s": seconds, "images": n_images, "eval_s_per_image": seconds / max(1, n_images)},
        artifacts=result.artifacts, **loaded.run)
    publish(record, record_path, params, cfg)
    acc = {s: m["accuracy"].get("ours") for s, m in result.metrics["suites"].items()}
    log.info("%s: ours accuracy per suite %s", model_id, {k: round(v, 2) for k, v in acc.items() if v is not None})
