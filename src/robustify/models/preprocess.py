"""uint8 NHWC batches -> normalised float NCHW at the model's input size (bicubic, antialiased)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Preprocess(nn.Module):
    def __init__(self, size: int, mean: tuple, std: tuple):
        super().__init__()
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def for_model(cls, name: str, size: int | None = None) -> "Preprocess":
        from .registry import get_spec

        spec = get_spec(name)
        return cls(size or spec.image_size, spec.mean, spec.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected uint8 NHWC images with 3 channels, got {x.dtype} {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=True).clamp_(0, 1)
        # the constants follow the images to their device: callers need not move this module
        return (x - self.mean.to(x.device)) / self.std.to(x.device)
