"""robustify robustify-teacher: fine-tune a pretrained teacher under an augmentation scheme; evaluate; record."""

from __future__ import annotations

import logging
from pathlib import Path

from .common import add_params_args, check_writable, load, publish

NAME = "robustify-teacher"
HELP = "make a teacher robust: fine-tune it from its pretrained weights under AugMix/DeepAugment/PixMix (+JSD)"
log = logging.getLogger("robustify.teacher")


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--teacher", required=True, help="registered model name, e.g. resnet20_cifar")
    p.add_argument("--scheme", required=True, help="augmix, deepaugment, pixmix, augmix_deepaugment or pixmix_augmix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deepaugment", default=None, metavar="NPZ",
                   help="pre-generated DeepAugment train images (robustify deepaugment); default: made on the fly")
    p.add_argument("--out", default=None, help="teacher file (default results/checkpoints/teachers/<T>_<S>_s<seed>.pt)")
    p.add_argument("--record", default=None, help="record (default results/metrics/teachers/<T>_<S>_s<seed>.json)")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def run(args) -> None:
    from ..augment.names import DEEPAUGMENT_SCHEMES, check_scheme
    from ..models import get_spec

    check_scheme(args.scheme)
    get_spec(args.teacher)
    params = load(args)
    import sys

    import numpy as np

    from ..config import params_hash
    from ..data import cifar10
    from ..data.splits import split as data_split
    from ..data.datasets import load_npz
    from ..errors import DataError
    from ..models import Preprocess, create_model
    from ..records import make_record
    from ..train import teacher as T

    cfg = params.teachers.for_teacher(args.teacher)
    stem = f"{args.teacher}_{args.scheme}_s{args.seed}"
    out = Path(args.out or f"results/checkpoints/teachers/{stem}.pt")
    record_path = Path(args.record or f"results/metrics/teachers/{stem}.json")
    check_writable(out, record_path)

    train = data_split(params.data, "train")
    keep = np.arange(len(train)) if cfg.train_per_class is None else np.flatnonzero(
        np.isin(np.arange(len(train)), np.concatenate([np.flatnonzero(train.y == c)[:cfg.train_per_class] for c in range(10)])))
    pool = None
    if args.scheme in DEEPAUGMENT_SCHEMES:
        if args.deepaugment:
            if not Path(args.deepaugment).is_file():
                raise DataError(f"{args.deepaugment}: no such DeepAugment file; make it with `robustify deepaugment --split train`")
            pool = load_npz(args.deepaugment, ["x"])["x"]
            if pool.shape != train.x.shape:
                raise DataError(f"{args.deepaugment}: {pool.shape} images but the train split has {train.x.shape}; "
                                "regenerate it with the same data.val_per_class")
            pool = pool[keep]
        else:
            log.warning("no --deepaugment pool given: DeepAugment images are made on the fly (slower)")
    weights = params.models.weights.get(args.teacher)
    # issue 11: the plain student of the robustness gap is built before training, so a model without
    # weights (or a missing weight file) fails in seconds, not after the fine-tune
    student = create_model(cfg.gap_student, pretrained=True, weights=params.models.weights.get(cfg.gap_student))
    result = T.robustify_teacher(args.teacher, args.scheme, args.seed, cfg, train.x[keep], train.y[keep], out,
                                 deepaugment_pool=pool, weights=weights)
    teacher = result.model

    # evaluation: clean test, corruptions on a test subset, gap to the plain student on corrupted validation images
    names = T.corruption_names()
    cc = getattr(params, "corruptions", None)  # the corruption engine's settings (issue 5), shared with evaluation
    table, engine = (cc.table, cc.engine) if cc is not None else ("cifar", "ours")
    pre = Preprocess.for_model(args.teacher)
    test = data_split(params.data, "test")  # smoke presets cap it (data.test_per_class); null = all
    tclf = T.Classifier(teacher, pre, args.teacher)  # one frozen graph for every set below
    clean = tclf.accuracy(test.x, test.y)
    progress = sys.stderr.isatty()
    c_metrics: dict = {}
    if cfg.test_c_per_class:
        sub = test.head(cfg.test_c_per_class)
        log.info("CIFAR-10-C estimate on %d test images × %d corruptions × severities %s (engine %s, table %s)",
                 len(sub), len(names), cfg.severities, engine, table)
        c_test = T.corruption_accuracy({"teacher": tclf}, sub.x, sub.y, cfg.severities, cfg.corruption_seed,
                                       table, engine, progress)["teacher"]
        c_mean, c_per = T.summarise(c_test)
        c_metrics = {"c_mean": c_mean, "c_per_corruption": c_per, "c_test_images": len(sub),
                     "c_cells": {c: {str(s): a for s, a in v.items()} for c, v in c_test.items()}}
    else:  # the workflow's evaluate/teachers runs the same cells (same images, engine and seed: equal to the last digit)
        log.info("no CIFAR-10-C estimate in this record (teachers.test_c_per_class: 0): `robustify evaluate` measures it")

    val = cifar10("val", params.data.val_per_class).head(cfg.val_c_per_class)
    spre = Preprocess.for_model(cfg.gap_student)
    c_val = T.corruption_accuracy({"teacher": tclf, "student": T.Classifier(student, spre, cfg.gap_student)}, val.x, val.y,
                                  cfg.severities, cfg.corruption_seed + 1, table, engine, progress)
    val_teacher, _ = T.summarise(c_val["teacher"])
    val_student, _ = T.summarise(c_val["student"])
    gap = val_teacher - val_student
    T.warn_if_not_more_robust(args.teacher, args.scheme, gap, cfg.gap_student)

    metrics = {
        "clean": clean,
        **c_metrics,
        "val_clean": tclf.accuracy(val.x, val.y),
        "val_c_mean": val_teacher,
        "val_c_mean_student": val_student,
        "val_robustness_gap": gap,
        "teacher_more_robust": bool(gap > 0),
        "train_loss": result.epoch_loss,
        "corruption_engine": engine,
        "corruption_table": table,
        "c_val_images": len(val),
    }
    from ..io import sha256_file

    record = make_record(
        "teachers", teacher=args.teacher, scheme=args.scheme, method="robustify_teacher", student=cfg.gap_student,
        seed=args.seed, params_hash=params_hash({"teachers": cfg.model_dump(mode="json"), "data": params.data.val_per_class}),
        metrics=metrics,
        timing={"train_s": result.train_s, "images_seen": result.images_seen, "epochs": result.epochs_done,
                "train_cpu_s": result.train_cpu_s, "threads": torch_threads(),
                "views_per_image": result.views_per_image},
        artifacts={"checkpoint": str(out), "checkpoint_sha256": sha256_file(out), "deepaugment_pool": args.deepaugment,
                   "deepaugment_pool_sha256": sha256_file(args.deepaugment) if args.deepaugment else None},  # issue 11
    )
    publish(record, record_path, params, cfg)
    from ..io import remove

    remove(T.state_path(out))  # issue 11: and its sha256 sidecar
    c_text = f", C mean {100 * c_metrics['c_mean']:.2f}%" if c_metrics else ""
    log.info("%s/%s: clean %.2f%%%s, val gap to %s %+.2f pt", args.teacher, args.scheme, 100 * clean, c_text,
             cfg.gap_student, 100 * gap)
