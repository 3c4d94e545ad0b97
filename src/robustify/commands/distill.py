"""robustify distill: uncertainty-based distillation of a robust teacher into a three-head student."""

from __future__ import annotations

import logging
from pathlib import Path

from .common import add_params_args, check_writable, load, publish

NAME = "distill"
HELP = "distil a robust teacher into a three-head student (frozen trunk, cached; DESIGN.md §1)"
log = logging.getLogger("robustify.distill")


def add_arguments(p) -> None:
    from ..augment.names import SCHEMES
    from ..models.names import MODEL_NAMES
    from ..train.losses import VARIANTS

    add_params_args(p)
    p.add_argument("--student", required=True, choices=MODEL_NAMES, metavar="STUDENT", help="registered model, e.g. resnet56_cifar")
    p.add_argument("--teacher", required=True, choices=[*MODEL_NAMES, "none"], metavar="TEACHER",
                   help="registered model, e.g. resnet20_cifar; 'none' for variant no_kd (it uses no teacher)")
    p.add_argument("--scheme", required=True, choices=SCHEMES, help="teacher robustification scheme (views use it too)")
    p.add_argument("--variant", required=True, choices=VARIANTS, help="full = DESIGN.md §1; no_kd = CE only (w/o KD, APT)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="student checkpoint (default results/checkpoints/students/<student>_<teacher>_<scheme>_<variant>_s<seed>.pt)")
    p.add_argument("--record", default=None, help="record (default results/metrics/distill/<same stem>.json)")
    p.add_argument("--init-head", default=None, help="linear-probe head file (`robustify linear-probe`) the heads start from")
    p.add_argument("--teacher-checkpoint", default=None,
                   help="robust teacher file, or 'pretrained' (default: params distill.teacher_checkpoint)")


def run(args) -> None:
    params = load(args)
    from ..records import make_record
    from ..train.distill import DistillJob, run_distill

    stem = f"{args.student}_{args.teacher}_{args.scheme}_{args.variant}_s{args.seed}"
    out = Path(args.out or f"results/checkpoints/students/{stem}.pt")
    record_path = Path(args.record or f"results/metrics/distill/{stem}.json")
    check_writable(out, record_path)
    from ..errors import ConfigError

    if args.student not in params.distill.n_tunable_blocks:
        raise ConfigError(f"distill.n_tunable_blocks has no entry for {args.student}; add one to params")
    if args.teacher == "none" and args.variant == "full":
        raise ConfigError("variant full distils a teacher; pass --teacher NAME (only no_kd runs with --teacher none)")
    job = DistillJob(args.student, args.teacher, args.scheme, args.variant, args.seed, out,
                     init_head=args.init_head, teacher_checkpoint=args.teacher_checkpoint)
    res = run_distill(params, job)
    record = make_record("distill", method="ours" if args.variant == "full" else "apt", variant=args.variant,
                         student=args.student, teacher=None if args.teacher == "none" else args.teacher,
                         scheme=args.scheme, seed=args.seed, params_hash=res["params_hash"], metrics=res["metrics"], timing=res["timing"],
                         artifacts=res["artifacts"])
    publish(record, record_path, params, params.distill)
    m = res["metrics"]
    log.info("%s: val clean acc clean/combined/robust %.2f/%.2f/%.2f, val views %.2f/%.2f/%.2f; %.2f ms per training image",
             stem, m["val_acc_clean"], m["val_acc_combined"], m["val_acc_robust"], m["val_aug_acc_clean"],
             m["val_aug_acc_combined"], m["val_aug_acc_robust"], 1000 * res["timing"]["train_s"] / max(1, res["timing"]["images_seen"]))
