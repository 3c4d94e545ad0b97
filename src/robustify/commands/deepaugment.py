"""robustify deepaugment: pre-generate the DeepAugment images of a CIFAR-10 split (a DVC-versioned dataset)."""

from __future__ import annotations

import logging
from pathlib import Path

from .common import add_params_args, check_writable, load

NAME = "deepaugment"
HELP = "pre-generate DeepAugment images (perturbed CAE / EDSR-like networks) of a CIFAR-10 split"
log = logging.getLogger("robustify.deepaugment")


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--split", default="train", choices=("train", "val", "train_full", "test"))
    p.add_argument("--out", default=None, help="output .npz (default data/deepaugment/<split>.npz): x (aligned with the split), y")


def run(args) -> None:
    params = load(args)
    import sys
    import time

    from ..augment.deepaugment import deepaugment_images
    from ..data import cifar10
    from ..data.splits import split as data_split
    from ..io import save_npz

    d = params.teachers.deepaugment
    out = Path(args.out or Path(params.data.root) / "deepaugment" / f"{args.split}.npz")
    check_writable(out)
    # the pool must line up row by row with the split the teacher trains on (data.* caps included)
    ds = data_split(params.data, args.split) if args.split in ("train", "val", "test") else cifar10(args.split, params.data.val_per_class)
    t0 = time.perf_counter()
    x = deepaugment_images(ds.x, d.seed, channels=d.channels, edsr_blocks=d.edsr_blocks,
                           strength=(d.strength_min, d.strength_max),
                           weights={"cae": d.cae_weights, "edsr": d.edsr_weights}, net_seed=d.net_seed,
                           progress=sys.stderr.isatty())
    secs = time.perf_counter() - t0
    mode = "pretrained weights" if (d.cae_weights or d.edsr_weights) else "random-init networks"
    sha = save_npz(out, x=x, y=ds.y)
    log.info("%d DeepAugment images of %s (%s) in %.0f s -> %s (sha256 %s)", len(x), ds.name, mode, secs, out, sha[:12])
