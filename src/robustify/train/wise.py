"""WiSE-E2E: weight-space ensembling of the original and the E2E fine-tuned student (Wortsman et al. 2022).

θ_α = (1-α)·θ_original + α·θ_e2e over every floating-point tensor of the state dict (classifier and
BatchNorm statistics included); integer buffers (BatchNorm's step counters) come from the nearer
endpoint. No training.
"""

from __future__ import annotations

import torch

from ..errors import CheckpointError


def interpolate(original: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1-α)·original + α·finetuned per tensor; α=0 and α=1 give the endpoints exactly."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within 0..1, got {alpha}")
    if set(original) != set(finetuned):
        diff = sorted(set(original) ^ set(finetuned))
        raise CheckpointError(f"WiSE endpoints have different tensors ({diff[:3]}); the E2E checkpoint belongs to another model")
    out = {}
    for k, a in original.items():
        b = finetuned[k]
        if a.shape != b.shape:
            raise CheckpointError(f"WiSE endpoints differ in {k} {tuple(a.shape)} vs {tuple(b.shape)}; the E2E checkpoint belongs to another model")
        if a.is_floating_point():
            out[k] = ((1.0 - alpha) * a + alpha * b).to(a.dtype)
        else:
            out[k] = (b if alpha >= 0.5 else a).clone()
    return out
