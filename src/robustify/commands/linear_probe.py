"""robustify linear-probe: fit the LP head of a student on frozen features; evaluate; record."""

from __future__ import annotations

import logging
from pathlib import Path

from .common import add_params_args, check_writable, int_in, load, publish

NAME = "linear-probe"
HELP = "linear probe on frozen pooled features of a pretrained student (LP baseline / LP head)"
log = logging.getLogger("robustify.linear_probe")


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--student", required=True, help="registered model name, e.g. efficientnet_lite0")
    p.add_argument("--image-size", type=int_in(16, 1024), default=None, help="input size (default: params models.image_size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="head checkpoint (default results/checkpoints/linear_probe/<student>.pt)")
    p.add_argument("--record", default=None, help="record (default results/metrics/baselines/linear_probe/<student>.json)")


def run(args) -> None:
    params = load(args)
    from ..config import params_hash
    from ..data.splits import split as data_split
    from ..models import Preprocess, create_model, get_spec
    from ..records import make_record
    from ..train import features as F
    from ..train import linear_probe as lp

    spec = get_spec(args.student)
    size = args.image_size or params.models.image_size.get(args.student, spec.image_size)
    out = Path(args.out or f"results/checkpoints/linear_probe/{args.student}.pt")
    record_path = Path(args.record or f"results/metrics/baselines/linear_probe/{args.student}.json")
    check_writable(out, record_path)

    from ..device import place

    model = place(create_model(args.student, pretrained=True, weights=params.models.weights.get(args.student)))
    pre = Preprocess.for_model(args.student, size)
    fn = F.pooled_features(model)
    cache_dir = Path(params.data.root) / "features"
    feats, secs = {}, {}
    for split in ("train", "val", "test"):
        ds = data_split(params.data, split)
        key = f"{args.student}|{size}px|{ds.name}|{len(ds)}|{spec.weights}"
        feats[split], secs[split] = F.cached(
            cache_dir / f"{args.student}_{size}px_{ds.name}.npz",
            lambda ds=ds: F.extract(fn, pre, ds.x, params.linear_probe.batch_size, desc=f"{args.student} {ds.name}"),
            key)
        feats[split + "_y"] = ds.y
        classes = ds.classes

    cfg = params.linear_probe
    res, wd, val_scores = lp.fit_select((feats["train"], feats["train_y"]), (feats["val"], feats["val_y"]),
                                        len(classes), cfg.weight_decays, cfg.max_iter, args.seed)
    metrics = {
        "weight_decay": wd,
        "clean": lp.accuracy(res.classifier, feats["test"], feats["test_y"]),
        "val": lp.accuracy(res.classifier, feats["val"], feats["val_y"]),
        "train": lp.accuracy(res.classifier, feats["train"], feats["train_y"]),
        "train_loss": res.train_loss,
        "val_by_weight_decay": {f"{k:g}": v for k, v in val_scores.items()},
    }
    n_train = len(feats["train_y"])
    sha = lp.save_head(out, res.classifier, args.student, size, classes)
    record = make_record(
        "baselines", method="linear_probe", student=args.student, seed=args.seed,
        params_hash=params_hash({"linear_probe": cfg.model_dump(), "image_size": size, "data": params.data.val_per_class}),
        metrics=metrics,
        timing={"train_s": secs["train"] + res.fit_s, "images_seen": n_train, "epochs": 1,
                "feature_s_per_image": secs["train"] / n_train, "fit_s": res.fit_s,
                "eval_s_per_image": secs["test"] / len(feats["test_y"])},
        artifacts={"checkpoint": str(out), "checkpoint_sha256": sha, "image_size": size},
    )
    publish(record, record_path, params, cfg)
    log.info("%s @ %dpx linear probe (weight decay %g): clean %.2f%%, val %.2f%%",
             args.student, size, wd, metrics["clean"], metrics["val"])
