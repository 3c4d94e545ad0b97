"""Inference cost in FLOPs (torch.utils.flop_counter): one plain forward vs ours with T MC passes.

plain = trunk + tunable + one head (what the original student costs);
ours  = trunk + tunable once + every head's deterministic part once + T × (dropout → classifier)
        for every head (the one-pass evaluator), or T × forward_heads when the heads cannot be split.
FlopCounterMode counts matmuls/convolutions (2 FLOPs per multiply-add); elementwise ops are not counted.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .onepass import _split_heads, head_names, mc_probs


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@torch.no_grad()
def inference_flops(model: nn.Module, x: torch.Tensor, passes: int) -> dict:
    """GFLOPs per image of a plain forward and of ours with `passes` MC passes, and the overhead."""
    model.eval()
    n = x.shape[0]
    z = model.forward_trunk(x)
    h = model.forward_tunable(z)
    trunk = count_flops(lambda: model.forward_trunk(x))
    tunable = count_flops(lambda: model.forward_tunable(z))
    names = head_names(model)
    all_heads = count_flops(lambda: model.forward_heads(h))
    one_head = all_heads / max(1, len(names))
    plain = trunk + tunable + one_head
    ours = count_flops(lambda: mc_probs(model, x, passes))
    split = _split_heads(model) is not None
    return {
        "passes": passes,
        "heads": len(names),
        "split_heads": split,
        "gflops_trunk": trunk / n / 1e9,
        "gflops_tunable": tunable / n / 1e9,
        "gflops_head": one_head / n / 1e9,
        "gflops_plain": plain / n / 1e9,
        "gflops_ours": ours / n / 1e9,
        "overhead": ours / plain - 1 if plain else 0.0,
    }
