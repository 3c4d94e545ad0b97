"""robustify baseline: the paper's baselines, trained on the same data and timed the same way.

- `original`     the pretrained student as shipped: a CIFAR ResNet with its own classifier, or an
                 ImageNet student with its linear-probe head (`--head`).
- `linear_probe` alias of `robustify linear-probe`.
- `e2e`          end-to-end AugMix + JSD fine-tuning of the whole student (`train/e2e.py`).
- `wise_e2e`     (1-α)·θ_original + α·θ_e2e for each α of `baselines.wise_alphas` (or `--alpha`);
                 reads the E2E checkpoint; its training cost is the E2E run's (`train/wise.py`).
- `vpt`          prompt tuning with the trunk frozen: VPT-deep for ViTs, padding prompts for CNNs (`train/vpt.py`).
- `apt`          the distillation variant `no_kd` (`train/distill.py`): one implementation, two names.
- `zero_shot`    open_clip students: classifier from prompt embeddings of the class names (`models/heads.py`).

Timing in every record: `train_s`, `images_seen` (images forwarded and back-propagated, augmented
views included — the convention of `robustify distill`), `epochs`, `s_per_image`; one-off costs
(caches, interpolation) under their own keys.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

from ..config import BASELINE_METHODS as METHODS
from .common import add_params_args, check_writable, int_in, load, publish

NAME = "baseline"
HELP = "train/evaluate a baseline (original, linear_probe, e2e, wise_e2e, vpt, apt, zero_shot) and write its record"
log = logging.getLogger("robustify.baseline")


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--student", required=True)
    p.add_argument("--head", default=None, help="linear-probe head of an ImageNet student (original, e2e, wise_e2e, vpt); "
                                                 "default results/checkpoints/linear_probe/<student>.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int_in(16, 1024), default=None)
    p.add_argument("--e2e", default=None, metavar="CKPT", help="wise_e2e: the E2E checkpoint (default results/checkpoints/baselines/e2e/<student>_s<seed>.pt)")
    p.add_argument("--alpha", type=float, default=None, help="wise_e2e: one α (default: every α of baselines.wise_alphas)")
    p.add_argument("--teacher", default=None, help="apt: label only, no teacher is used (default baselines.apt_teacher)")
    p.add_argument("--scheme", default=None, help="apt: scheme of the augmented views (default the first of distill.schemes)")
    p.add_argument("--out", default=None, help="checkpoint")
    p.add_argument("--record", default=None)


def run(args) -> None:
    if args.method == "linear_probe":
        from . import linear_probe

        return linear_probe.run(args)
    params = load(args)
    from ..models import get_spec

    get_spec(args.student)  # unknown student: one line
    {"original": _original, "e2e": _e2e, "wise_e2e": _wise, "vpt": _vpt, "apt": _apt, "zero_shot": _zero_shot}[args.method](args, params)


# ---------------------------------------------------------------------------------------------
# helpers


def _paths(args, method: str, stem: str) -> tuple[Path, Path]:
    out = Path(args.out or f"results/checkpoints/baselines/{method}/{stem}.pt")
    record = Path(args.record or f"results/metrics/baselines/{method}/{stem}.json")
    return out, record


def _default_head(args, student: str) -> Optional[str]:
    if args.head:
        return args.head
    path = Path(f"results/checkpoints/linear_probe/{student}.pt")
    return str(path) if path.is_file() else None


def original_model(params, student: str, head: Optional[str], image_size: Optional[int] = None):
    """(pretrained student with its 10-way classifier, input size): CIFAR models as shipped, ImageNet ones + LP head."""
    from ..models import create_model, get_spec
    from ..models.classifier import attach_head

    spec = get_spec(student)
    model = create_model(student, pretrained=True, weights=params.models.weights.get(student))
    size = image_size or params.models.image_size.get(student, spec.image_size)
    if spec.num_classes != 10:
        head_size = attach_head(model, head, student)
        if image_size is None:
            size = head_size
    return model, size


def _accuracy(model, student: str, size: int, x, batch: int = 256):
    from ..device import place
    from ..models import Preprocess
    from ..train.features import extract

    return extract(place(model), Preprocess.for_model(student, size), x, batch, desc=student).argmax(1)


def _val_metrics(params, model, student: str, size: int) -> dict:
    from ..data.splits import split as data_split

    ds = data_split(params.data, "val")
    return {"val": float((_accuracy(model, student, size, ds.x) == ds.y).mean() * 100), "val_images": len(ds)}


def _train_set(params):
    from ..data.splits import split as data_split

    return data_split(params.data, "train").head(params.baselines.train_per_class)


def _run_loop(args, params, method: str, model, size: int, out: Path):
    import torch

    from ..train.e2e import finetune, loop_config

    cfg = params.baselines
    train = _train_set(params)
    res = finetune(args.student, model, cfg.scheme, args.seed, loop_config(params.teachers, cfg, method),
                   train.x, train.y, out, size)
    timing = {"train_s": res.train_s, "images_seen": res.images_seen, "epochs": res.epochs,
              "train_images": res.train_images, "views_per_image": res.views_per_image,
              "s_per_train_image": res.train_s / max(1, res.train_images), "train_cpu_s": res.train_cpu_s,
              "cpu_s_per_image": res.train_cpu_s / max(1, res.images_seen),  # robust to other jobs sharing the cores
              "threads": torch.get_num_threads()}
    return res, timing, len(train)


def _hash(params, method: str, size: int, extra: Optional[dict] = None) -> str:
    from ..config import params_hash

    cfg = params.baselines.model_dump(mode="json")
    keep = {k: v for k, v in cfg.items() if k.startswith(method.split("_")[0]) or k in ("scheme", "train_per_class", "momentum", "warmup", "jsd_lambda")}
    return params_hash({"method": method, "baselines": keep, "image_size": size, "augment": params.teachers.augmix.model_dump(mode="json"),
                        "val_per_class": params.data.val_per_class, **(extra or {})})


# ---------------------------------------------------------------------------------------------
# methods


def _original(args, params) -> None:
    from ..data.splits import split as data_split
    from ..records import make_record
    from ..config import params_hash

    record_path = Path(args.record or f"results/metrics/baselines/original/{args.student}.json")
    check_writable(record_path)
    model, size = original_model(params, args.student, args.head, args.image_size)
    metrics = {}
    t0 = time.perf_counter()
    for split, key in (("test", "clean"), ("val", "val")):
        ds = data_split(params.data, split)
        metrics[key] = float((_accuracy(model, args.student, size, ds.x, params.linear_probe.batch_size) == ds.y).mean() * 100)
    eval_s = time.perf_counter() - t0
    record = make_record("baselines", method="original", student=args.student, seed=args.seed,
                         params_hash=params_hash({"image_size": size, "head": args.head}), metrics=metrics,
                         timing={"train_s": 0.0, "images_seen": 0, "epochs": 0, "s_per_image": 0.0, "eval_s": eval_s},
                         artifacts={"image_size": size, "head": args.head})
    publish(record, record_path, params)
    log.info("%s original: clean %.2f%%", args.student, metrics["clean"])


def _e2e(args, params) -> None:
    from ..records import make_record
    from ..train.e2e import save_whole

    out, record_path = _paths(args, "e2e", f"{args.student}_s{args.seed}")
    check_writable(out, record_path)
    head = _default_head(args, args.student)
    model, size = original_model(params, args.student, head, args.image_size)
    res, timing, n = _run_loop(args, params, "e2e", model, size, out)
    meta = {"method": "e2e", "seed": args.seed, "scheme": params.baselines.scheme, "init_head": head}
    sha = save_whole(out, res.model, args.student, size, meta)
    metrics = {"train_loss": res.epoch_loss, "train_images_per_epoch": n, **_val_metrics(params, res.model, args.student, size)}
    record = make_record("baselines", method="e2e", student=args.student, scheme=params.baselines.scheme, seed=args.seed,
                         params_hash=_hash(params, "e2e", size, {"head": head}), metrics=metrics, timing=timing,
                         artifacts={"checkpoint": str(out), "checkpoint_sha256": sha, "image_size": size, "init_head": head})
    publish(record, record_path, params, params.baselines)
    log.info("%s e2e: val %.2f%%, %.2f ms per image seen", args.student, metrics["val"], 1000 * timing["train_s"] / max(1, timing["images_seen"]))


def _wise(args, params) -> None:
    from ..errors import CheckpointError, ConfigError
    from ..io import sha256_file
    from ..records import make_record, read_record
    from ..train.e2e import load_whole, save_whole
    from ..train.wise import interpolate

    alphas = [args.alpha] if args.alpha is not None else list(params.baselines.wise_alphas)
    if args.alpha is None and (args.out or args.record):
        raise ConfigError("--out/--record name one WiSE model: pass --alpha too (or neither, for every baselines.wise_alphas)")
    if any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ConfigError(f"--alpha must be within 0..1, got {args.alpha}")
    e2e_path = Path(args.e2e or f"results/checkpoints/baselines/e2e/{args.student}_s{args.seed}.pt")
    if not e2e_path.is_file():
        raise CheckpointError(f"{e2e_path}: E2E checkpoint not found; run `robustify baseline --method e2e --student {args.student} "
                              f"--seed {args.seed}` first (or pass --e2e)")
    finetuned, obj = load_whole(e2e_path)
    if obj["student"] != args.student:
        raise CheckpointError(f"{e2e_path}: E2E checkpoint of {obj['student']}, not {args.student}; pass the E2E run of {args.student}")
    meta = obj.get("meta", {})
    head = meta.get("init_head") or _default_head(args, args.student)
    size = int(obj["image_size"])
    original, _ = original_model(params, args.student, head, size)
    e2e_record = Path(f"results/metrics/baselines/e2e/{args.student}_s{args.seed}.json") if args.e2e is None else \
        Path(str(e2e_path).replace("/checkpoints/", "/metrics/")).with_suffix(".json")
    e2e_timing = read_record(e2e_record)["timing"] if e2e_record.is_file() else {}
    if not e2e_timing:
        log.warning("no E2E record at %s: WiSE training cost left empty", e2e_record)
    for alpha in alphas:
        method = f"wise_e2e_{alpha:g}"
        out, record_path = _paths(args, method, f"{args.student}_s{args.seed}")
        check_writable(out, record_path)
        t0 = time.perf_counter()
        state = interpolate(original.state_dict(), finetuned.state_dict(), alpha)
        model, _ = original_model(params, args.student, head, size)
        model.load_state_dict(state)
        interp_s = time.perf_counter() - t0
        sha = save_whole(out, model.eval(), args.student, size,
                         {"method": method, "seed": args.seed, "alpha": alpha, "e2e": str(e2e_path), "init_head": head})
        metrics = {"alpha": alpha, **_val_metrics(params, model, args.student, size)}
        timing = {k: e2e_timing[k] for k in ("train_s", "images_seen", "epochs", "train_images", "views_per_image",
                                              "s_per_train_image", "train_cpu_s", "cpu_s_per_image", "threads") if k in e2e_timing}
        timing["interpolate_s"] = interp_s
        record = make_record("baselines", method=method, student=args.student, scheme=meta.get("scheme"), seed=args.seed,
                             params_hash=_hash(params, "wise_e2e", size, {"alpha": alpha, "e2e": sha256_file(e2e_path)}),
                             metrics=metrics, timing=timing,
                             artifacts={"checkpoint": str(out), "checkpoint_sha256": sha, "e2e": str(e2e_path), "image_size": size})
        publish(record, record_path, params, params.baselines)
        log.info("%s wise_e2e α=%g: val %.2f%%", args.student, alpha, metrics["val"])


def _vpt(args, params) -> None:
    from ..records import make_record
    from ..train import vpt

    import torch

    from ..models import get_spec

    out, record_path = _paths(args, "vpt", f"{args.student}_s{args.seed}")
    check_writable(out, record_path)
    head = _default_head(args, args.student)
    base, size = original_model(params, args.student, head, args.image_size)
    torch.manual_seed(args.seed)
    cfg = params.baselines
    model = vpt.build(base, get_spec(args.student).family, size, cfg.vpt_tokens, cfg.vpt_pad)
    trunk0 = {k: v.detach().clone() for k, v in model.trunk_state().items()}
    res, timing, n = _run_loop(args, params, "vpt", model, size, out)
    changed = [k for k, v in model.trunk_state().items() if not torch.equal(v, trunk0[k])]
    if changed:
        raise AssertionError(f"VPT changed the frozen trunk: {changed[:3]}")
    meta = {"method": "vpt", "seed": args.seed, "scheme": cfg.scheme, "init_head": head}
    sha = vpt.save(out, model, args.student, meta)
    metrics = {"train_loss": res.epoch_loss, "train_images_per_epoch": n, "prompt_type": model.prompt_type,
               "prompt_size": model.prompt_size, "trainable_params": sum(p.numel() for p in model.trainable_parameters()),
               **_val_metrics(params, model, args.student, size)}
    record = make_record("baselines", method="vpt", student=args.student, scheme=cfg.scheme, seed=args.seed,
                         params_hash=_hash(params, "vpt", size, {"head": head}), metrics=metrics, timing=timing,
                         artifacts={"checkpoint": str(out), "checkpoint_sha256": sha, "image_size": size, "init_head": head})
    publish(record, record_path, params, cfg)
    log.info("%s vpt (%s, %d): val %.2f%%", args.student, model.prompt_type, model.prompt_size, metrics["val"])


def _apt(args, params) -> None:
    """APT = `robustify distill --variant no_kd` (the same function), recorded as a baseline."""
    from ..augment.names import check_scheme
    from ..errors import ConfigError
    from ..records import make_record
    from ..train.distill import DistillJob, run_distill

    scheme = check_scheme(args.scheme or params.distill.schemes[0])
    teacher = args.teacher or params.baselines.apt_teacher
    out, record_path = _paths(args, "apt", f"{args.student}_s{args.seed}")
    check_writable(out, record_path)
    if args.student not in params.distill.n_tunable_blocks:
        raise ConfigError(f"distill.n_tunable_blocks has no entry for {args.student}; add one to params")
    job = DistillJob(args.student, teacher, scheme, "no_kd", args.seed, out, init_head=args.head)
    res = run_distill(params, job)
    record = make_record("baselines", method="apt", variant="no_kd", student=args.student, teacher=teacher, scheme=scheme,
                         seed=args.seed, params_hash=res["params_hash"], metrics=res["metrics"], timing=res["timing"],
                         artifacts=res["artifacts"])
    publish(record, record_path, params, params.distill)
    log.info("%s apt: val clean acc (combined head) %.2f%%", args.student, res["metrics"]["val_acc_combined"])


def _zero_shot(args, params) -> None:
    from ..config import params_hash
    from ..errors import ConfigError
    from ..io import save_torch, sha256_file
    from ..models import create_model, get_spec
    from ..models.heads import CIFAR10_CLASSNAMES, zero_shot_classifier
    from ..models.student import clip_tokenizer
    from ..records import make_record

    spec = get_spec(args.student)
    if spec.family != "open_clip":
        raise ConfigError(f"zero_shot needs an open_clip student; {args.student} is {spec.family}")
    out, record_path = _paths(args, "zero_shot", args.student)
    check_writable(out, record_path)
    model = create_model(args.student, pretrained=True, weights=params.models.weights.get(args.student))
    size = args.image_size or params.models.image_size.get(args.student, spec.image_size)
    t0 = time.perf_counter()
    clf = zero_shot_classifier(model.clip, clip_tokenizer(model))
    head_s = time.perf_counter() - t0
    save_torch(out, {"kind": "linear_probe", "method": "zero_shot", "student": args.student, "image_size": int(size),
                     "classes": list(CIFAR10_CLASSNAMES), "classifier": clf.state_dict()})
    model.reset_classifier(10)
    model.get_classifier().load_state_dict(clf.state_dict())
    metrics = _val_metrics(params, model, args.student, size)
    record = make_record("baselines", method="zero_shot", student=args.student, seed=args.seed,
                         params_hash=params_hash({"image_size": size, "classes": list(CIFAR10_CLASSNAMES)}), metrics=metrics,
                         timing={"train_s": 0.0, "images_seen": 0, "epochs": 0, "s_per_image": 0.0, "head_s": head_s},
                         artifacts={"checkpoint": str(out), "checkpoint_sha256": sha256_file(out), "image_size": size})
    publish(record, record_path, params)
    log.info("%s zero-shot: val %.2f%%", args.student, metrics["val"])
