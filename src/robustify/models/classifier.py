"""Putting a saved 10-way linear-probe head on an ImageNet-pretrained model."""

from __future__ import annotations

from typing import Optional

import torch.nn as nn

from ..errors import CheckpointError, ConfigError
from .registry import read_checkpoint


def attach_head(model: nn.Module, head_path: Optional[str], name: str) -> int:
    """Replace the classifier with the linear-probe head in `head_path`; returns the head's image size."""
    if not head_path:
        raise ConfigError(f"{name} is ImageNet-pretrained: pass --head with its linear-probe checkpoint (robustify linear-probe)")
    ckpt = read_checkpoint(head_path, name)
    if ckpt.get("kind") != "linear_probe" or ckpt.get("student") != name:
        raise CheckpointError(f"{head_path} is not a linear-probe head of {name} (it is for {ckpt.get('student')!r}); pass the head made for {name}")
    state = ckpt["classifier"]
    model.reset_classifier(state["weight"].shape[0])
    try:
        model.get_classifier().load_state_dict(state)
    except RuntimeError:
        raise CheckpointError(f"{head_path}: head shape {tuple(state['weight'].shape)} does not fit {name}; remake it with robustify linear-probe") from None
    return int(ckpt["image_size"])
