"""End-to-end (E2E) AugMix fine-tuning of a whole student: the paper's E2E baseline.

The same training loop as teacher robustification (`train.teacher.robustify_teacher`: crop/flip +
AugMix views, CE + λ·JSD, SGD one-cycle, resumable per epoch) applied to every weight of the
student, starting from the pretrained model with its 10-way classifier (an ImageNet student's
linear-probe head). VPT (`train.vpt`) runs the same loop with the trunk frozen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch.nn as nn

from ..config import BaselinesConfig, TeachersConfig

log = logging.getLogger("robustify.baselines")

FORMAT = "robustify-baseline/1"


def loop_config(teachers: TeachersConfig, cfg: BaselinesConfig, method: str) -> TeachersConfig:
    """The teacher loop's settings for a baseline: its epochs/lr/batch, the teachers' augmentation settings."""
    if method == "e2e":
        epochs, lr, batch, wd = cfg.e2e_epochs, cfg.e2e_lr, cfg.e2e_batch_size, cfg.e2e_weight_decay
    elif method == "vpt":
        epochs, lr, batch, wd = cfg.vpt_epochs, cfg.vpt_lr, cfg.vpt_batch_size, 0.0
    else:
        raise ValueError(f"no training loop for method {method}")
    return teachers.model_copy(update=dict(epochs=epochs, lr=lr, batch_size=batch, weight_decay=wd, momentum=cfg.momentum,
                                           warmup=cfg.warmup, jsd_lambda=cfg.jsd_lambda, train_per_class=cfg.train_per_class))


@dataclass
class FinetuneOutcome:
    model: nn.Module
    train_s: float
    train_cpu_s: float
    train_images: int     # source images per epoch × epochs
    images_seen: int      # images forwarded and back-propagated: source images × views
    views_per_image: int
    epochs: int
    epoch_loss: list


def finetune(student: str, model: nn.Module, scheme: str, seed: int, cfg: TeachersConfig, x: np.ndarray, y: np.ndarray,
             out: str | Path, image_size: int, progress: Optional[bool] = None) -> FinetuneOutcome:
    """Train `model` in place with the teacher loop; its resume state lives next to `out` until done."""
    from .teacher import robustify_teacher, state_path

    scratch = Path(out).with_name(Path(out).name + ".train")  # the loop's own output (teacher format), removed below
    res = robustify_teacher(student, scheme, seed, cfg, x, y, scratch, model=model, image_size=image_size, progress=progress)
    from ..io import remove

    remove(scratch)  # issue 11: and its sha256 sidecar
    remove(state_path(scratch))
    return FinetuneOutcome(res.model, res.train_s, res.train_cpu_s, res.images_seen, res.images_seen * res.views_per_image,
                           res.views_per_image, res.epochs_done, list(res.epoch_loss))


def save_whole(path: str | Path, model: nn.Module, student: str, image_size: int, meta: dict) -> str:
    """A whole single-head model as `robustify evaluate --model` reads it: {'student', 'state_dict', 'image_size', 'meta'}."""
    from ..io import save_torch

    return save_torch(path, {"format": FORMAT, "student": student, "image_size": int(image_size),
                             "state_dict": model.state_dict(), "meta": dict(meta, student=student, image_size=int(image_size))})


def load_whole(path: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, checkpoint dict) of a file written by `save_whole`."""
    from ..errors import CheckpointError
    from ..models.registry import create_model, load_state_checked, read_checkpoint

    obj = read_checkpoint(path, "baseline")
    if obj.get("format") != FORMAT or "state_dict" not in obj:
        raise CheckpointError(f"{path}: not a baseline checkpoint ({FORMAT}); pass a file written by `robustify baseline --method e2e`")
    state = obj["state_dict"]
    model = create_model(obj["student"], pretrained=False)
    clf_key = next(n for n, m in model.named_modules() if m is model.get_classifier())
    n_out = int(state[clf_key + ".weight"].shape[0]) if clf_key + ".weight" in state else None
    if n_out is not None and n_out != model.get_classifier().out_features:
        model.reset_classifier(n_out)
    load_state_checked(model, state, str(path), obj["student"])
    return model.eval(), obj
