"""AugMix (Hendrycks et al., 2020) with its Jensen-Shannon consistency loss.

The image operation is torchvision's `AugMix` (severity 3, width 3, depth 1–3, α=1) with the original
op set (`all_ops=False`: shear, translate, rotate, posterize, solarize, autocontrast, equalize — no
brightness/contrast/colour/sharpness, which overlap the test corruptions). torchvision draws from the
global torch RNG, so each image runs inside a forked RNG seeded from its own stream: the view depends
on (seed, image) only, never on batching. The loss is `timm.loss.JsdCrossEntropy` without smoothing.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .seeding import torch_seed


@functools.lru_cache(maxsize=8)
def _augmix_op(severity: int, width: int, depth: int, alpha: float, all_ops: bool):
    from torchvision.transforms import AugMix, InterpolationMode

    return AugMix(severity=severity, mixture_width=width, chain_depth=depth, alpha=alpha,
                  all_ops=all_ops, interpolation=InterpolationMode.BILINEAR)


def augmix_image(image: np.ndarray, rng: np.random.Generator, severity: int = 3, width: int = 3, depth: int = -1,
                 alpha: float = 1.0, all_ops: bool = False) -> np.ndarray:
    """One AugMix view of a uint8 HWC image; `depth=-1` draws 1–3 ops per chain."""
    op = _augmix_op(int(severity), int(width), int(depth), float(alpha), bool(all_ops))
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(rng))
        y = op(x)
    return y.permute(1, 2, 0).numpy()


def augment_op_image(image: np.ndarray, rng: np.random.Generator, severity: int = 3, all_ops: bool = False) -> np.ndarray:
    """One random AugMix-family operation (PixMix's `augment_input`), uint8 HWC in and out."""
    from torchvision.transforms.autoaugment import _apply_op

    op = _augmix_op(int(severity), 1, 1, 1.0, bool(all_ops))
    h, w = image.shape[:2]
    space = op._augmentation_space(op._PARAMETER_MAX, (h, w))
    names = list(space)
    name = names[int(rng.integers(len(names)))]
    magnitudes, signed = space[name]
    magnitude = float(magnitudes[int(rng.integers(severity))].item()) if magnitudes.ndim > 0 else 0.0
    if signed and rng.random() < 0.5:
        magnitude = -magnitude
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    y = _apply_op(x, name, magnitude, interpolation=op.interpolation, fill=None)
    return y.permute(1, 2, 0).numpy()


def jsd_loss(lam: float = 12.0) -> torch.nn.Module:
    """CE on the clean split + λ·JSD(clean, view 1, view 2); logits stacked as [clean; view1; view2]."""
    from timm.loss import JsdCrossEntropy

    return JsdCrossEntropy(num_splits=3, alpha=lam, smoothing=0.0)


def js_divergence(*probs: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Mean over the batch of (1/M)·Σ KL(p_i ‖ mixture), the AugMix consistency term (without λ)."""
    mix = torch.clamp(torch.stack(probs).mean(0), eps, 1).log()
    return sum(torch.nn.functional.kl_div(mix, p, reduction="batchmean") for p in probs) / len(probs)


