"""Test doubles for the evaluation tests: a tiny three-head student with the MultiHeadStudent interface."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HEADS = ("clean", "combined", "robust")


class _Head(nn.Module):
    def __init__(self, width: int, num_classes: int, p: float):
        super().__init__()
        self.body = nn.Linear(width, width)
        self.classifier = nn.Linear(width, num_classes)
        self.dropout_p = p

    def pre_logits(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(h))

    def forward(self, h: torch.Tensor, mc: bool = False) -> torch.Tensor:
        return self.classifier(F.dropout(self.pre_logits(h), self.dropout_p, training=self.training or mc))


class TinyStudent(nn.Module):
    """conv trunk → linear tunable → three dropout heads; counts trunk/tunable/head calls.

    `split=True` exposes the heads as `.heads` (the evaluator's fast path runs pre_logits once);
    `split=False` hides them so the evaluator calls forward_heads T times.
    """

    HEADS = HEADS

    def __init__(self, num_classes: int = 10, width: int = 16, p: float = 0.3, split: bool = True, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.tunable = nn.Linear(32, width)
        heads = nn.ModuleDict({h: _Head(width, num_classes, p) for h in HEADS})
        if split:
            self.heads = heads
        else:
            self.hidden_heads = heads
        self.dropout_p = p
        self.calls = {"trunk": 0, "tunable": 0, "heads": 0}

    def _heads(self):
        return self.heads if hasattr(self, "heads") else self.hidden_heads

    def forward_trunk(self, x):
        self.calls["trunk"] += 1
        return self.trunk(x)

    def forward_tunable(self, z):
        self.calls["tunable"] += 1
        return torch.relu(self.tunable(z))

    def forward_heads(self, h, mc: bool = False):
        self.calls["heads"] += 1
        return {n: self._heads()[n](h, mc=mc) for n in HEADS}

    def features(self, x):
        return self._heads()["combined"].pre_logits(self.forward_tunable(self.forward_trunk(x)))

    def forward(self, x):
        return self.forward_heads(self.forward_tunable(self.forward_trunk(x)))


def identity_preprocess(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).float() / 255.0


def random_images(n: int, size: int = 8, seed: int = 0, classes: int = 10):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, classes, n).astype(np.int64)
