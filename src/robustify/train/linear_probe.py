"""Linear probe: multinomial logistic regression on frozen pooled features (paper's LP baseline).

For ImageNet-pretrained students (EfficientNet-Lite, CLIP) this also makes the pretrained 10-way head
that the three-head student starts from. Full-batch L-BFGS on the cached features: deterministic and
seconds long, so no tuning loop is needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import TrainingError


@dataclass
class ProbeResult:
    classifier: nn.Linear
    train_loss: float
    fit_s: float


def fit(features: np.ndarray, labels: np.ndarray, num_classes: int, weight_decay: float = 1e-4,
        max_iter: int = 100, seed: int = 0) -> ProbeResult:
    """Fit W,b minimising mean CE + weight_decay/2·‖W‖² with L-BFGS (strong Wolfe line search)."""
    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    clf = nn.Linear(x.shape[1], num_classes)
    nn.init.zeros_(clf.weight)
    nn.init.zeros_(clf.bias)
    opt = torch.optim.LBFGS(clf.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(clf(x), y) + 0.5 * weight_decay * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    t0 = time.perf_counter()
    loss = opt.step(closure)
    if not torch.isfinite(loss):
        raise TrainingError("linear probe loss is not finite; lower linear_probe.max_iter or raise weight_decay")
    return ProbeResult(clf.eval(), float(closure().detach()), time.perf_counter() - t0)


def fit_select(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], num_classes: int,
               weight_decays: list[float], max_iter: int = 100, seed: int = 0) -> tuple[ProbeResult, float, dict]:
    """Fit one probe per L2 strength; keep the best on validation (ties: the stronger L2).

    Returns (best probe, its weight decay, {weight_decay: val accuracy}).
    """
    scores: dict[float, float] = {}
    best: tuple[float, float, ProbeResult] | None = None
    for wd in sorted(weight_decays, reverse=True):
        res = fit(*train, num_classes, wd, max_iter, seed)
        scores[wd] = accuracy(res.classifier, *val)
        if best is None or scores[wd] > best[0]:
            best = (scores[wd], wd, res)
    assert best is not None
    return best[2], best[1], scores


@torch.no_grad()
def accuracy(clf: nn.Linear, features: np.ndarray, labels: np.ndarray) -> float:
    pred = clf(torch.from_numpy(features.astype(np.float32))).argmax(1).numpy()
    return float((pred == labels).mean() * 100)


def save_head(path: str | Path, clf: nn.Linear, student: str, image_size: int, classes: tuple) -> str:
    from ..io import save_torch

    return save_torch(path, {"classifier": clf.state_dict(), "image_size": int(image_size),
                             "student": student, "classes": list(classes), "kind": "linear_probe"})
