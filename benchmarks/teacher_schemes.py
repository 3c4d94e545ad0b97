"""Measure teacher robustification per scheme: clean / corruption accuracy and the validation gap to
the plain ResNet-56 student (issue 6). Library-level so corrupted sets are made once and cached.

  python benchmarks/teacher_schemes.py baseline
  python benchmarks/teacher_schemes.py train SCHEME EPOCHS LR [TAG]

Writes JSON under $MEASURE_DIR (default /tmp/teacher_measure). 1 torch thread.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from robustify.config import TeachersConfig  # noqa: E402
from robustify.data.datasets import cifar10  # noqa: E402
from robustify.models import Preprocess, create_model  # noqa: E402
from robustify.train.teacher import (Classifier, corrupt_images, corruption_names, robustify_teacher,  # noqa: E402
                                     summarise)

OUT = Path(os.environ.get("MEASURE_DIR", "/tmp/teacher_measure"))
OUT.mkdir(parents=True, exist_ok=True)
SEV = (1, 2, 3, 4, 5)
TEST_PER_CLASS, VAL_PER_CLASS = 50, 30


# corruption sets: "ref" = imagecorruptions reference package (ImageNet-C constants, per-image numpy seeds,
# the first cached sets; comparable to MEASUREMENTS.md), "cifar" = our engine with the CIFAR-10-C table.
TABLES = os.environ.get("TABLES", "ref,cifar").split(",")


def corrupted(split: str, per_class: int, table: str) -> tuple[np.ndarray, np.ndarray, dict]:
    ds = cifar10(split).head(per_class)
    path = OUT / (f"c_{split}_{per_class}.npz" if table == "ref" else f"c_{table}_{split}_{per_class}.npz")
    names = corruption_names()
    if path.exists():
        f = np.load(path)
        return ds.x, ds.y, {(c, s): f[f"{c}_{s}"] for c in names for s in SEV}
    if table == "ref":
        raise SystemExit(f"{path} missing: the reference sets were made by the first baseline run")
    seed = 0 if split == "test" else 1
    cells = {(c, s): corrupt_images(ds.x, c, s, seed, table=table) for c in names for s in SEV}
    np.savez(str(path) + ".tmp.npz", **{f"{c}_{s}": v for (c, s), v in cells.items()})
    os.replace(str(path) + ".tmp.npz", path)
    return ds.x, ds.y, cells


def evaluate(model, name: str) -> dict:
    clf = Classifier(model, Preprocess.for_model(name), name)
    test = cifar10("test")
    res = {"clean_test": clf.accuracy(test.x, test.y)}
    for table in TABLES:
        for split, n in (("test", TEST_PER_CLASS), ("val", VAL_PER_CLASS)):
            x, y, cells = corrupted(split, n, table)
            acc = {}
            for (c, s), xc in cells.items():
                acc.setdefault(c, {})[s] = clf.accuracy(xc, y)
            mean, per = summarise(acc)
            res[f"{table}_c_{split}_mean"] = mean
            res[f"{table}_c_{split}_sev123"] = float(np.mean([acc[c][s] for c in acc for s in (1, 2, 3)]))
            res[f"{table}_c_{split}_per"] = per
            res[f"clean_{split}_subset"] = clf.accuracy(x, y)
    return res


def main() -> None:
    if sys.argv[1] == "eval":  # re-evaluate saved teachers / plain models under TABLES
        from robustify.train.teacher import load_teacher

        for arg in sys.argv[2:]:
            if arg.endswith(".state"):  # an unfinished run: the weights after its last finished epoch
                saved = torch.load(arg, map_location="cpu", weights_only=True)
                model = create_model("resnet20_cifar")
                model.load_state_dict(saved["model"])
                tag = f"{Path(arg).name.split('.pt')[0]}_after_epoch{saved['epoch']}"
            elif arg.endswith(".pt"):
                model, tag = load_teacher(arg), Path(arg).stem
            else:
                model, tag = create_model(arg, pretrained=True), f"plain_{arg}"
            r = evaluate(model, "resnet20_cifar" if arg.endswith((".pt", ".state")) else arg)
            if arg.endswith(".state"):
                r.update(epoch=saved["epoch"], train_s=saved["train_s"], images_seen=saved["images_seen"], epoch_loss=saved["epoch_loss"])
            (OUT / f"{tag}.eval.json").write_text(json.dumps(r, indent=1))
            print(tag, {k: v for k, v in r.items() if not k.endswith("_per")}, flush=True)
        return
    if sys.argv[1] == "baseline":
        for name in ("resnet20_cifar", "resnet56_cifar"):
            r = evaluate(create_model(name, pretrained=True), name)
            (OUT / f"plain_{name}.json").write_text(json.dumps(r, indent=1))
            print(name, {k: v for k, v in r.items() if not k.endswith("_per")}, flush=True)
        return
    scheme, epochs, lr = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    tag = sys.argv[5] if len(sys.argv) > 5 else ""
    cfg = TeachersConfig(epochs=epochs, lr=lr)
    tr = cifar10("train")
    pool = None
    if "deepaugment" in scheme:
        pp = OUT / "deepaugment_train.npz"
        if not pp.exists():
            from robustify.augment import deepaugment_images

            d = cfg.deepaugment
            pool = deepaugment_images(tr.x, d.seed, channels=d.channels, edsr_blocks=d.edsr_blocks,
                                      strength=(d.strength_min, d.strength_max), net_seed=d.net_seed)
            np.savez(str(pp) + '.tmp.npz', x=pool)
            os.replace(str(pp) + '.tmp.npz', pp)
        pool = np.load(pp)["x"]
    name = f"{scheme}_e{epochs}_lr{lr}{tag}"
    t0 = time.time()
    o = robustify_teacher("resnet20_cifar", scheme, 0, cfg, tr.x, tr.y, OUT / f"{name}.pt", deepaugment_pool=pool)
    wall = time.time() - t0
    r = evaluate(o.model, "resnet20_cifar")
    r.update(scheme=scheme, epochs=epochs, lr=lr, train_s=o.train_s, s_per_image=o.train_s / o.images_seen,
             train_cpu_s=o.train_cpu_s, cpu_s_per_image=o.train_cpu_s / o.images_seen,
             wall_s=wall, epoch_loss=o.epoch_loss, threads=torch.get_num_threads())
    (OUT / f"{name}.json").write_text(json.dumps(r, indent=1))
    print(name, {k: v for k, v in r.items() if not k.endswith("_per")}, flush=True)


if __name__ == "__main__":
    main()
