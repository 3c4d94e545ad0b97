"""Uncertainty-based distillation into the three-head student (DESIGN.md §1), on the frozen-trunk cache.

Each step takes a batch of clean images and, for the same images, one cached augmented view:
the shared tunable part runs once on both (one BatchNorm batch), the clean head sees the clean
half, the robust head the augmented half and the combined head both; `losses.distill_loss` gives
L = L_clean + λ·L_aug. Epoch e uses view set e mod K, so K ≥ epochs means fresh views every epoch.

Checkpoints hold only the trainable part (tunable blocks + heads). A resume file is written
atomically after every epoch; a killed run restarts from it and ends bit-identical to an
uninterrupted one (per-epoch seeding of the shuffling and dropout). A non-finite loss raises
TrainingError and leaves the last good resume file in place.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, TrainingError
from ..models.frozen import InferenceGraph
from ..models.heads import HEADS
from ..models.student import MultiHeadStudent, create_student
from . import distributed  # issue 12: torchrun/DDP hooks, no-ops for one process
from .losses import LossWeights, distill_loss

log = logging.getLogger("robustify")

FORMAT = "robustify-distill-student/1"


@dataclass
class TrainSettings:
    epochs: int = 3
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    freeze_bn: bool = False


@dataclass
class DistillData:
    """Training tensors (trunk outputs may be float16; cast per batch)."""

    z_clean: torch.Tensor        # [N, ...]
    z_views: torch.Tensor        # [K, N, ...]
    y: torch.Tensor              # [N]
    t_orig: torch.Tensor         # [N, C]   frozen original student on clean images
    t_views: Optional[torch.Tensor] = None  # [K, N, C] robust teacher on the views (None for no_kd)

    @classmethod
    def from_arrays(cls, trunk: dict, teacher: Optional[dict]) -> "DistillData":
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        return cls(t(trunk["z_clean"]), t(trunk["z_views"]), t(trunk["y"]).long(), t(trunk["t_orig"]).float(),
                   None if teacher is None else t(teacher["t_views"]).float())

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def k(self) -> int:
        return int(self.z_views.shape[0])


def step_loss(student: MultiHeadStudent, z_clean: torch.Tensor, z_aug: torch.Tensor, y: torch.Tensor,
              t_orig: Optional[torch.Tensor], t_small: Optional[torch.Tensor], w: LossWeights) -> tuple[torch.Tensor, dict]:
    """Loss of one batch from trunk outputs (the same for cached and freshly computed ones)."""
    n = z_clean.shape[0]
    h = student.forward_tunable(torch.cat([z_clean.float(), z_aug.float()]))
    h_clean, h_aug = h[:n], h[n:]
    combined = student.forward_head("combined", h)
    clean = {"clean": student.forward_head("clean", h_clean), "combined": combined[:n]}
    aug = {"robust": student.forward_head("robust", h_aug), "combined": combined[n:]}
    return distill_loss(clean, aug, y, y, t_orig, t_small, w)


def _set_train(student: MultiHeadStudent, freeze_bn: bool) -> None:
    student.train()
    if freeze_bn:
        for m in student.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _epoch_seed(seed: int, epoch: int) -> int:
    return 1_000_003 * (int(seed) + 1) + epoch


def train(student: MultiHeadStudent, data: DistillData, w: LossWeights, s: TrainSettings, seed: int,
          resume_path: Optional[Path] = None, run_key: str = "", stop_after: Optional[int] = None,
          progress: bool = True) -> dict:
    """Train in place; returns {"history": per-epoch means, "train_s": seconds, "images_seen": n}.

    With `resume_path`, state is saved there after every epoch and picked up if it exists (same
    `run_key`). `stop_after` stops after that many epochs (simulates a kill in tests).
    """
    from tqdm import tqdm

    from ..io import save_torch

    if w.uses_teacher and data.t_views is None:
        raise ValueError("variant 'full' needs teacher logits")
    dist = distributed.setup()  # issue 12: under torchrun each rank trains its share of every batch
    dev = torch.device(dist.device)
    student.to(dev)  # the caches stay in host memory; each batch moves (below)
    params = student.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    steps_per_epoch = (data.n + s.batch_size - 1) // s.batch_size
    total = max(1, s.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + np.cos(np.pi * min(i, total) / total)))
    state = {"epoch": 0, "history": [], "train_s": 0.0}
    ddp_step = distributed.wrap(distributed.StepModule(student, step_loss), dist)  # DDP syncs via its forward
    if resume_path is not None and Path(resume_path).is_file():
        from ..io import verify_sha256

        verify_sha256(resume_path)  # issue 11
        ck = torch.load(resume_path, map_location="cpu", weights_only=False)
        if ck.get("run_key") == run_key:
            student.load_trainable_state(ck["state"])
            opt.load_state_dict(ck["optim"])
            sched.load_state_dict(ck["sched"])
            state = {k: ck[k] for k in ("epoch", "history", "train_s")}
            log.info("resuming from %s after epoch %d", resume_path, state["epoch"])
        else:
            log.warning("%s belongs to another configuration; starting over", resume_path)

    for epoch in range(state["epoch"], s.epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
        perm = torch.randperm(data.n, generator=g)
        torch.manual_seed(_epoch_seed(seed, epoch) + 1)  # dropout
        k = epoch % data.k
        _set_train(student, s.freeze_bn)
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"distill epoch {epoch + 1}/{s.epochs}", leave=False,
                   disable=None if progress else True)
        for step in bar:
            idx = perm[step * s.batch_size:(step + 1) * s.batch_size]
            idx, scale = distributed.shard(idx, dist)  # issue 12: (all of idx, 1.0) for one process
            batch = (data.z_clean[idx], data.z_views[k, idx], data.y[idx], data.t_orig[idx],
                     None if data.t_views is None else data.t_views[k, idx])
            loss, parts = ddp_step(*(None if t is None else t.to(dev) for t in batch), w)
            loss = loss * scale
            if not torch.isfinite(loss):
                where = f"{resume_path} (after epoch {state['epoch']})" if resume_path and Path(resume_path).is_file() else "none yet"
                raise TrainingError(f"non-finite loss at epoch {epoch + 1} step {step + 1}; last good checkpoint: {where}; "
                                    "lower distill.lr or check the teacher's logits")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for key, v in parts.items():
                sums[key] = sums.get(key, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
        sums = {k2: distributed.all_reduce_sum(v, dist) for k2, v in sums.items()}  # issue 12: add up the ranks' shares
        state["train_s"] += time.perf_counter() - t0
        state["history"].append({k2: v / data.n for k2, v in sums.items()})
        state["epoch"] = epoch + 1
        log.info("epoch %d/%d: %s", epoch + 1, s.epochs, {k2: round(v, 4) for k2, v in state["history"][-1].items()})
        if resume_path is not None and dist.is_main:  # issue 12: rank 0 writes
            save_torch(resume_path, {"run_key": run_key, "state": student.trainable_state(), "optim": opt.state_dict(),
                                     "sched": sched.state_dict(), **state})
    student.eval()
    return {"history": state["history"], "train_s": state["train_s"], "images_seen": 2 * data.n * state["epoch"],
            "epochs_done": state["epoch"]}


# ---------------------------------------------------------------------------------------------
# evaluation helpers (validation figures in the distill record; the full evaluation is its own stage)


@torch.no_grad()
def head_logits(student: MultiHeadStudent, z: torch.Tensor, batch: int = 512) -> dict[str, torch.Tensor]:
    student.eval()
    dev = next(student.parameters()).device
    outs = {h: [] for h in HEADS}
    for i in range(0, len(z), batch):
        o = student.forward_heads(student.forward_tunable(z[i:i + batch].to(dev).float()))
        for h in HEADS:
            outs[h].append(o[h].cpu())
    return {h: torch.cat(v) for h, v in outs.items()}


def head_metrics(logits: dict[str, torch.Tensor], y: torch.Tensor, prefix: str) -> dict[str, float]:
    """Accuracy per head, how often clean/robust heads disagree, KL(p_combined ‖ p_h)."""
    out = {f"{prefix}_acc_{h}": float((v.argmax(1) == y).float().mean()) * 100 for h, v in logits.items()}
    out[f"{prefix}_disagree_clean_robust"] = float((logits["clean"].argmax(1) != logits["robust"].argmax(1)).float().mean()) * 100
    lm = F.log_softmax(logits["combined"], 1)
    for h in ("clean", "robust"):
        out[f"{prefix}_kl_combined_{h}"] = float((lm.exp() * (lm - F.log_softmax(logits[h], 1))).sum(1).mean())
    return out


# ---------------------------------------------------------------------------------------------
# checkpoints of the trainable part


def student_meta(name: str, *, n_tunable_blocks: int, head_depth: int, dropout_p: float, image_size: int,
                 pretrained: bool = True, weights: Optional[str] = None, num_classes: int = 10, **extra) -> dict:
    return dict(student=name, n_tunable_blocks=n_tunable_blocks, head_depth=head_depth, dropout_p=dropout_p,
                image_size=image_size, pretrained=pretrained, weights=weights, num_classes=num_classes, **extra)


def build_from_meta(meta: dict) -> MultiHeadStudent:
    """The student skeleton of a checkpoint: pretrained trunk, placeholder heads (overwritten by the state)."""
    return create_student(meta["student"], n_tunable_blocks=meta["n_tunable_blocks"], head_depth=meta["head_depth"],
                          dropout_p=meta["dropout_p"], pretrained=meta["pretrained"], weights=meta.get("weights"),
                          num_classes=meta["num_classes"], placeholder_heads=True)


def save_student(path: str | Path, student: MultiHeadStudent, meta: dict) -> str:
    """Write the trainable part (+ the trunk itself only for random-init students, which cannot be rebuilt)."""
    from ..io import save_torch

    obj = {"format": FORMAT, "meta": dict(meta, trunk_sha256=student.trunk_fingerprint()),
           "state": student.trainable_state()}
    if not meta.get("pretrained", True):
        obj["trunk_state"] = student.trunk.state_dict()
    return save_torch(path, obj)


def load_student(path: str | Path) -> tuple[MultiHeadStudent, dict]:
    """Rebuild a distilled student → (student in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: student checkpoint not found; run `robustify distill` to make it")
    from ..io import verify_sha256

    verify_sha256(path)  # issue 11
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}); delete it and rerun `robustify distill`") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a distilled student ({FORMAT}); pass a file written by `robustify distill`")
    meta = obj["meta"]
    student = build_from_meta(meta)
    if "trunk_state" in obj:
        student.trunk.load_state_dict(obj["trunk_state"])
    try:
        student.load_trainable_state(obj["state"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: state does not fit {meta['student']} as configured ({str(e).splitlines()[0][:120]}); rerun distill") from None
    if student.trunk_fingerprint() != meta.get("trunk_sha256"):
        raise CheckpointError(f"{path}: the trunk weights of {meta['student']} differ from those it was distilled on; "
                              "use the same pretrained weights (params models.weights) or rerun distill")
    student.eval()
    return student, meta


# ---------------------------------------------------------------------------------------------
# the whole stage: caches → train → validation figures → checkpoint + record


@dataclass
class DistillJob:
    student: str
    teacher: str
    scheme: str
    variant: str
    seed: int
    out: Path
    init_head: Optional[str] = None
    teacher_checkpoint: Optional[str] = None
    view_fn: Optional[Callable[[np.ndarray, int], np.ndarray]] = None  # tests: a cheap view maker
    progress: bool = True


def resolve_init_head(params, student: str, given: Optional[str]) -> Optional[str]:
    if given:
        return given
    cfg = params.distill
    if student in cfg.init_head:
        return cfg.init_head[student]
    if student in params.linear_probe.students:
        return f"results/checkpoints/linear_probe/{student}.pt"
    return None


def load_robust_teacher(job: DistillJob, pattern: str, teacher_seed: Optional[int] = None) -> tuple[nn.Module, str]:
    """(teacher model, cache key). 'pretrained' = the plain pretrained teacher (development, ablations).
    `teacher_seed` fills the pattern's {seed} (params teachers.seeds); default the run's seed."""
    from ..io import sha256_file
    from ..models.registry import create_model

    src = job.teacher_checkpoint or pattern
    if src == "pretrained":
        from ..device import place

        return place(create_model(job.teacher, pretrained=True)).eval(), f"{job.teacher}:pretrained"
    seed = job.seed if teacher_seed is None else teacher_seed
    path = Path(src.format(teacher=job.teacher, scheme=job.scheme, seed=seed))
    if not path.is_file():
        raise CheckpointError(f"{path}: robust teacher not found; run `robustify robustify-teacher --teacher {job.teacher} "
                              f"--scheme {job.scheme} --seed {seed}` first (or pass --teacher-checkpoint)")
    from .teacher import load_teacher

    return load_teacher(path), f"{job.teacher}:{sha256_file(path)}"


def run_distill(params, job: DistillJob) -> dict:
    """Build/read the caches, train (resumably), evaluate on validation, write the checkpoint. → record parts."""
    from ..config import params_hash
    from ..data import cifar10
    from ..models.preprocess import Preprocess
    from ..models.registry import get_spec
    from . import cache as C

    cfg = params.distill
    w = LossWeights(cfg.alpha, cfg.tau, cfg.gamma, cfg.lam, job.variant, cfg.kd_weighting)
    s = TrainSettings(cfg.epochs, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.freeze_bn)
    size = params.models.image_size.get(job.student, get_spec(job.student).image_size)
    init_head = resolve_init_head(params, job.student, job.init_head)
    if init_head and not Path(init_head).is_file():
        raise CheckpointError(f"{init_head}: linear-probe head of {job.student} not found; run `robustify linear-probe "
                              f"--student {job.student}` first (or pass --init-head)")
    if init_head:
        from ..models.heads import load_linear_probe
        from ..models.registry import read_checkpoint

        lp_size = int(read_checkpoint(init_head, job.student).get("image_size", size))
        if lp_size != size:
            raise CheckpointError(f"{init_head}: probe fitted at {lp_size} px but the student runs at {size} px; "
                                  "rerun linear-probe or fix models.image_size")
    meta = student_meta(job.student, n_tunable_blocks=cfg.n_tunable_blocks[job.student], head_depth=cfg.head_depth,
                        dropout_p=cfg.dropout, image_size=size, weights=params.models.weights.get(job.student),
                        teacher=None if job.teacher == "none" else job.teacher, scheme=job.scheme,
                        variant=job.variant, seed=job.seed, method="ours" if job.variant == "full" else "apt",
                        init_head=init_head, zero_shot=job.student in cfg.zero_shot)
    torch.manual_seed(job.seed)
    student = create_student(job.student, n_tunable_blocks=meta["n_tunable_blocks"], head_depth=cfg.head_depth,
                             dropout_p=cfg.dropout, weights=meta["weights"], init_head=init_head,
                             zero_shot=meta["zero_shot"])
    fingerprint0 = student.trunk_fingerprint()
    from ..device import place

    place(student)  # the caches' trunk outputs are computed where it trains
    pre_s = Preprocess.for_model(job.student, size)

    caps = [c for c in (getattr(params.data, "train_per_class", None), cfg.train_per_class) if c]
    cap = min(caps) if caps else None  # smoke runs: data.train_per_class and/or distill.train_per_class
    train_ds = cifar10("train", params.data.val_per_class).head(cap)
    val_ds = cifar10("val", params.data.val_per_class).head(cap)
    x, y = train_ds.x, train_ds.y
    cache_dir = Path(params.data.root) / "cache" / "distill"
    settings_key = ""
    view_fn = job.view_fn
    if view_fn is None:
        from ..augment.views import AugmentSettings

        settings = AugmentSettings.from_config(params.teachers)
        settings_key = repr(settings)
        view_fn = C.default_view_fn(job.scheme, settings)
    k = cfg.views_per_image
    if w.uses_teacher:  # issue 11: a missing/corrupt/mismatched teacher fails before the caches are built
        teacher, teacher_key = load_robust_teacher(job, cfg.teacher_checkpoint, params.teacher_seed(job.seed))
    views = C.build_views(cache_dir, x, job.scheme, job.seed, k, view_fn, settings_key)
    student_key = C.key_of(meta["student"], meta["n_tunable_blocks"], size, meta["weights"], init_head and _sha(init_head),
                           meta["zero_shot"], get_spec(job.student).weights)
    trunk = C.build_trunk(cache_dir, student, pre_s, x, y, views, student_key, cfg.cache_batch_size, cfg.cache_dtype, job.student)
    teacher_file = None
    if w.uses_teacher:
        pre_t = Preprocess.for_model(job.teacher, params.models.image_size.get(job.teacher))
        teacher_file = C.build_teacher(cache_dir, teacher, pre_t, views, teacher_key, cfg.cache_batch_size, job.teacher)
    C.check_shapes(trunk, teacher_file, len(y), k)
    data = DistillData.from_arrays(trunk.arrays, None if teacher_file is None else teacher_file.arrays)

    run_key = params_hash({"meta": meta, "cfg": cfg.model_dump(mode="json"), "trunk": trunk.sha256,
                           "teacher": teacher_file.sha256 if teacher_file else None})
    resume = job.out.with_name(job.out.name + ".resume")
    res = train(student, data, w, s, job.seed, resume_path=resume, run_key=run_key, progress=job.progress)
    if student.trunk_fingerprint() != fingerprint0:
        raise AssertionError("the frozen trunk changed during distillation")

    # validation: clean images and one fresh view set of them (never test data)
    trunk_fn = InferenceGraph(student.trunk, lambda b: student.forward_trunk(pre_s(b)), "validation trunk")
    z_val = torch.from_numpy(C.batched(trunk_fn, val_ds.x, cfg.cache_batch_size))
    v_val = view_fn(val_ds.x, C.view_seed(job.seed, 999))
    z_val_aug = torch.from_numpy(C.batched(trunk_fn, v_val, cfg.cache_batch_size))
    yv = torch.from_numpy(val_ds.y)
    metrics = {**head_metrics(head_logits(student, z_val), yv, "val"),
               **head_metrics(head_logits(student, z_val_aug), yv, "val_aug")}
    metrics.update({f"final_{k2}": v for k2, v in res["history"][-1].items()} if res["history"] else {})
    sha = save_student(job.out, student, meta)
    from ..io import remove

    remove(resume)  # issue 11: and its sha256 sidecar
    cache_s = views.build_s + trunk.build_s + (teacher_file.build_s if teacher_file else 0.0)
    n_img = max(1, res["images_seen"])
    timing = {"train_s": res["train_s"], "images_seen": res["images_seen"], "epochs": res["epochs_done"],
              "cache_s": cache_s, "cache_views_s": views.build_s, "cache_trunk_s": trunk.build_s,
              "cache_teacher_s": teacher_file.build_s if teacher_file else 0.0,
              "s_per_image_with_cache": (res["train_s"] + cache_s) / n_img}
    artifacts = {"checkpoint": str(job.out), "checkpoint_sha256": sha, "history": res["history"],
                 "cache": {c.path.name: c.sha256 for c in (views, trunk, teacher_file) if c is not None},
                 "trainable_params": sum(p.numel() for p in student.trainable_parameters()),
                 "trunk_sha256": fingerprint0,
                 "teacher": teacher_key if w.uses_teacher else None}  # name:sha256 of the robust teacher file
    return {"metrics": metrics, "timing": timing, "artifacts": artifacts, "meta": meta,
            "params_hash": params_hash({"distill": cfg.model_dump(mode="json"), "image_size": size,
                                        "val_per_class": params.data.val_per_class})}


def _sha(path: str) -> str:
    from ..io import sha256_file

    return sha256_file(path)
