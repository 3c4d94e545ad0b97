"""Teacher robustification: fine-tune a pretrained teacher under an augmentation scheme (paper Table 4).

Crop/flip + the scheme's views (`augment.TripletViews`), CE + λ·JSD where AugMix is part of the scheme,
SGD (Nesterov) with a one-cycle schedule. After every epoch the full training state (model, optimiser,
scheduler, RNG, epoch, losses, time) is written atomically next to the output, so a killed run resumes
from the last finished epoch and ends with the same weights as an uninterrupted one: the data order
and every view depend only on (seed, epoch, index). A non-finite loss stops training with a
TrainingError; the last good state stays on disk.

Evaluation helpers measure clean accuracy, corruption accuracy (the corruption engine,
`robustify.corruptions`) and the teacher–student robustness gap on corrupted *validation* images.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment.dataset import TripletViews
from ..augment.names import JSD_SCHEMES, check_scheme
from ..augment.views import AugmentSettings
from ..config import TeachersConfig, params_hash
from ..errors import CheckpointError, TrainingError
from ..io import save_torch
from ..models import Preprocess, create_model, read_checkpoint
from ..models.registry import get_spec, load_state_checked
from . import distributed  # issue 12: torchrun/DDP hooks, no-ops for one process

log = logging.getLogger("robustify.teacher")

TRAIN_KEYS = ("epochs", "lr", "momentum", "weight_decay", "batch_size", "warmup", "jsd_lambda", "train_per_class",
              "augmix", "pixmix", "deepaugment")


def state_path(out: str | Path) -> Path:
    """Where the resumable training state of output `out` lives (`<out>.state`)."""
    out = Path(out)
    return out.with_name(out.name + ".state")


def training_fingerprint(teacher: str, scheme: str, seed: int, cfg: TeachersConfig, n_train: int) -> str:
    sub = {k: v for k, v in cfg.model_dump(mode="json").items() if k in TRAIN_KEYS}
    return params_hash({"teacher": teacher, "scheme": scheme, "seed": seed, "n_train": n_train, "cfg": sub})


@dataclass
class TrainOutcome:
    model: nn.Module
    epochs_done: int
    train_s: float
    images_seen: int
    views_per_image: int
    epoch_loss: list = field(default_factory=list)
    finished: bool = False
    train_cpu_s: float = 0.0  # process CPU time: robust to other jobs sharing the cores


def _loss_fn(scheme: str, jsd_lambda: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if scheme in JSD_SCHEMES:
        from ..augment.augmix import jsd_loss

        jsd = jsd_loss(jsd_lambda)
        return lambda logits, y: jsd(logits, y)
    return lambda logits, y: F.cross_entropy(logits, y.repeat(logits.shape[0] // y.shape[0]))


def micro_batch_images(model: nn.Module, micro_batch: int, dist) -> int:
    """Images per forward of the training loop: `micro_batch` when splitting a batch cannot change the
    update — no BatchNorm in training mode (VPT keeps the trunk's statistics frozen) and one process —
    else 0 (the whole batch in one forward, as BatchNorm's batch statistics require).

    Small forwards keep activations in the CPU caches: VPT on Lite0 @ 96 px runs ~1.4× faster per image
    at 32 images per forward than at 128 (measured on this machine)."""
    if micro_batch <= 0 or dist.enabled:
        return 0
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules()):
        return 0
    return micro_batch


def _steps_per_epoch(n: int, batch_size: int) -> tuple[int, int]:
    """(steps, batch) — full batches only, so BatchNorm never sees a batch of one."""
    bs = min(batch_size, n)
    return max(1, n // bs), bs


def robustify_teacher(teacher: str, scheme: str, seed: int, cfg: TeachersConfig, x: np.ndarray, y: np.ndarray,
                      out: str | Path, *, deepaugment_pool: Optional[np.ndarray] = None, max_epochs: Optional[int] = None,
                      model: Optional[nn.Module] = None, weights: Optional[str] = None,
                      progress: Optional[bool] = None, image_size: Optional[int] = None) -> TrainOutcome:
    """Fine-tune `teacher` (pretrained) on (x, y) under `scheme`; resumes from `<out>.state` when present.

    `max_epochs` stops after that many epochs *in this call* (tests simulate a kill with it); the
    returned outcome then has `finished=False`. When all `cfg.epochs` are done the weights go to `out`.
    `model` (default: the pretrained `teacher`) and `image_size` (default: its native size) let the
    E2E and VPT baselines (`train/e2e.py`, `train/vpt.py`) run this same loop on a student.
    """
    check_scheme(scheme)
    out = Path(out)
    spath = state_path(out)
    torch.manual_seed(seed)
    if model is None:
        model = create_model(teacher, pretrained=True, weights=weights, num_classes=10)  # CIFAR-10 label space
    dist = distributed.setup()  # issue 12: under torchrun each rank trains its share of every batch
    dev = torch.device(dist.device)
    model.to(dev)  # before the optimiser exists, so its state lives there too
    pre = Preprocess.for_model(teacher, image_size)
    views = TripletViews(x, y, scheme, seed, AugmentSettings.from_config(cfg), deepaugment_pool)
    steps, bs = _steps_per_epoch(len(y), cfg.batch_size)
    total = cfg.epochs * steps
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=max(cfg.warmup, 1e-3),
                                                anneal_strategy="cos", cycle_momentum=False, div_factor=25.0,
                                                final_div_factor=1e3)
    loss_fn = _loss_fn(scheme, cfg.jsd_lambda)
    ddp_model = distributed.wrap(model, dist)
    fp = training_fingerprint(teacher, scheme, seed, cfg, len(y))
    state = {"epoch": 0, "train_s": 0.0, "train_cpu_s": 0.0, "images_seen": 0, "epoch_loss": []}
    if spath.exists():
        saved = read_checkpoint(spath, teacher)
        if saved.get("fingerprint") != fp:
            log.warning("%s belongs to other settings (teacher/scheme/seed/params changed); starting afresh", spath)
        else:
            load_state_checked(model, saved["model"], str(spath), teacher)
            try:
                opt.load_state_dict(saved["optimizer"])
                sched.load_state_dict(saved["scheduler"])
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"{spath}: optimiser/scheduler state does not fit ({e}); delete it and rerun") from None
            torch.set_rng_state(saved["torch_rng"])
            if dev.type == "cuda" and "cuda_rng" in saved:  # dropout / drop-path masks drawn on the GPU
                torch.cuda.set_rng_state(saved["cuda_rng"], dev)
            state = {k: saved.get(k, v) for k, v in state.items()}
            log.info("resuming %s/%s seed %d from epoch %d of %d (%s)", teacher, scheme, seed, state["epoch"], cfg.epochs, spath)
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    from tqdm import tqdm

    run_epochs = cfg.epochs - state["epoch"] if max_epochs is None else min(max_epochs, cfg.epochs - state["epoch"])
    for epoch in range(state["epoch"], state["epoch"] + run_epochs):
        model.train()
        order = np.random.default_rng([int(seed), epoch, 0x7EAC]).permutation(len(y))
        t0, c0 = time.perf_counter(), time.process_time()
        total_loss, bar = 0.0, tqdm(range(steps), desc=f"{teacher}/{scheme} epoch {epoch + 1}/{cfg.epochs}",
                                    disable=not progress, leave=False)
        micro = micro_batch_images(model, cfg.micro_batch, dist) // views.n_views
        for step in bar:
            idx = order[step * bs:(step + 1) * bs]
            idx, scale = distributed.shard(idx, dist)  # issue 12: (all of idx, 1.0) for one process
            opt.zero_grad(set_to_none=True)
            for part in np.array_split(idx, max(1, -(-len(idx) // micro))) if micro else [idx]:
                v, labels = views.batch(part, epoch)  # per-image views: the same however idx is split
                inp = pre(torch.from_numpy(v.reshape(-1, *v.shape[2:])).to(dev))
                logits = ddp_model(inp)  # issue 12: DDP averages gradients over ranks
                # the losses are means over images: weighting each part by its share sums to the batch's loss
                loss = loss_fn(logits, torch.from_numpy(labels).to(dev)) * (scale * len(part) / len(idx))
                if not torch.isfinite(loss):
                    where = f"the last good state ({spath}, epoch {state['epoch']})" if spath.exists() else "no checkpoint yet"
                    raise TrainingError(f"{teacher}/{scheme} seed {seed}: loss became {loss.item()} at epoch {epoch + 1} step {step + 1}; "
                                        f"{where} is kept; lower teachers.lr (now {cfg.lr}) and rerun")
                loss.backward()
                total_loss += loss.item()
            opt.step()
            sched.step()
            if progress:
                bar.set_postfix(loss=f"{total_loss / (step + 1):.3f}", lr=f"{sched.get_last_lr()[0]:.4f}")
        state["train_s"] += time.perf_counter() - t0
        state["train_cpu_s"] += time.process_time() - c0
        state["images_seen"] += steps * bs
        total_loss = distributed.all_reduce_mean(total_loss, dist)  # issue 12
        state["epoch_loss"].append(total_loss / steps)
        state["epoch"] = epoch + 1
        log.info("%s/%s seed %d: epoch %d/%d loss %.4f (%.0f s)", teacher, scheme, seed, epoch + 1, cfg.epochs,
                 total_loss / steps, time.perf_counter() - t0)
        if dist.is_main:  # issue 12: rank 0 writes
            rng = {"cuda_rng": torch.cuda.get_rng_state(dev)} if dev.type == "cuda" else {}
            save_torch(spath, {**state, "fingerprint": fp, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), **rng})
    model.eval()
    finished = state["epoch"] >= cfg.epochs
    if finished and dist.is_main:  # issue 12: rank 0 writes
        save_teacher(out, model, teacher, scheme, seed, state["epoch"])
    return TrainOutcome(model, state["epoch"], state["train_s"], state["images_seen"], views.n_views,
                        list(state["epoch_loss"]), finished, state["train_cpu_s"])


def save_teacher(path: str | Path, model: nn.Module, teacher: str, scheme: str, seed: int, epochs: int) -> str:
    """The robust teacher file: {'teacher', 'scheme', 'seed', 'epochs', 'num_classes', 'model'} (atomic write).

    Teachers pretrained on another label space (ImageNet models) get a fresh 10-way CIFAR classifier.
    """
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    num_classes = int(classifier.out_features) if isinstance(classifier, nn.Linear) else get_spec(teacher).num_classes
    return save_torch(path, {"teacher": teacher, "scheme": scheme, "seed": int(seed), "epochs": int(epochs),
                             "num_classes": num_classes, "model": model.state_dict()})


def load_teacher(path: str | Path) -> nn.Module:
    """A robustified teacher written by `robustify robustify-teacher`, in eval mode."""
    obj = read_checkpoint(path, "teacher")
    if "teacher" not in obj or "model" not in obj:
        raise CheckpointError(f"{path}: not a robust-teacher file (needs 'teacher' and 'model'); "
                              "pass the .pt written by robustify robustify-teacher")
    name = str(obj["teacher"])
    model = create_model(name, pretrained=False, num_classes=int(obj.get("num_classes", 10)))
    load_state_checked(model, obj["model"], str(path), str(obj["teacher"]))
    from ..device import place

    return place(model).eval()


# ---------------------------------------------------------------------------------------------
# evaluation


class Classifier:
    """Predicted labels of one model on uint8 NHWC images: preprocessing + model as one frozen graph
    (`models/frozen.py`, built on the first batch) over batches of 32, as evaluation runs models. The
    teacher record's evaluation of ResNet-56 (clean, C, validation gap) took 116 instead of 154 s in
    eager batches of 500 on this CPU, same accuracies. Build it once per model: the graph is traced on
    the first call (~1 s)."""

    def __init__(self, model: nn.Module, pre: nn.Module, name: str = "model", batch: int = 32):
        from ..device import place
        from ..models.frozen import InferenceGraph

        place(model).eval()
        self.batch = int(batch)
        self.fn = InferenceGraph(model, lambda x: model(pre(x)), name)

    def predict(self, x: np.ndarray) -> np.ndarray:
        from .cache import batched

        return batched(self.fn, x, self.batch).argmax(1)  # InferenceGraph runs under no_grad

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == y).mean())


def corruption_names() -> tuple[str, ...]:
    """The 15 ImageNet-C corruption names, in canonical order."""
    from ..corruptions import CORRUPTIONS

    return tuple(CORRUPTIONS)


def corrupt_images(x: np.ndarray, name: str, severity: int, seed: int, table: str = "cifar", engine: str = "ours") -> np.ndarray:
    """Corrupted copies of uint8 NHWC images by the corruption engine, seeded per image index."""
    from ..corruptions import corrupt, image_seeds

    return corrupt(x, name, severity, image_seeds(seed, np.arange(len(x)), name, severity), table=table, engine=engine)


def corruption_accuracy(models: dict[str, Classifier], x: np.ndarray, y: np.ndarray,
                        severities: Sequence[int], seed: int, table: str = "cifar", engine: str = "ours",
                        progress: bool = False) -> dict[str, dict[str, dict[int, float]]]:
    """{model: {corruption: {severity: accuracy}}}; each corrupted set is made once and shared by all models."""
    from tqdm import tqdm

    names = corruption_names()
    res: dict[str, dict[str, dict[int, float]]] = {m: {c: {} for c in names} for m in models}
    cells = [(c, s) for c in names for s in severities]
    for c, s in tqdm(cells, desc="corruptions", disable=not progress, leave=False):
        xc = corrupt_images(x, c, s, seed, table, engine)
        for m, clf in models.items():
            res[m][c][s] = clf.accuracy(xc, y)
    return res


def summarise(cells: dict[str, dict[int, float]]) -> tuple[float, dict[str, float]]:
    """(mean over corruptions × severities, per-corruption mean over severities)."""
    per = {c: float(np.mean(list(v.values()))) for c, v in cells.items()}
    return float(np.mean(list(per.values()))), per


def warn_if_not_more_robust(teacher: str, scheme: str, gap: float, student: str) -> None:
    if gap <= 0:
        log.warning("!" * 78)
        log.warning("WARNING: teacher %s/%s is NOT more robust than the plain %s on corrupted validation images "
                    "(gap %+.2f pt); distillation from it cannot add robustness — train it longer or pick another scheme",
                    teacher, scheme, student, 100 * gap)
        log.warning("!" * 78)
    else:
        log.info("teacher %s/%s is %.2f pt more robust than the plain %s on corrupted validation images",
                 teacher, scheme, 100 * gap, student)

