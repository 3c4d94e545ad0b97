"""Frozen inference graphs for the deterministic parts of a model (trunk, tunable blocks, pre-logits).

`torch.jit.trace` + `torch.jit.freeze` folds BatchNorm into the preceding convolutions, inlines the
weights and lets oneDNN fuse conv + activation. Measured on this 2-core CPU, one thread
(`benchmarks/inference.py`): EfficientNet-Lite0 @ 96 px 1.3-1.5× faster, CIFAR ResNet-56 1.1×, same
outputs to ~2e-5; small batches (evaluate.batch_size 32) keep the activations in the CPU caches.
Evaluation and the distillation caches run these parts over every image, so the ~1 s trace is paid
back at once. Only eval-mode, gradient-free use: training keeps eager.

A graph is only used after it reproduced the eager outputs on the first real batch, and only for
inputs of that batch's shape. Tracing assumes no control flow on tensor values (true of the CNN,
ViT and CLIP towers here); a model that cannot be traced stays eager (logged).
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn

log = logging.getLogger("robustify")

Outputs = Union[torch.Tensor, Sequence[torch.Tensor]]


class _Bound(nn.Module):
    """fn(x) as a module that owns `owner`, so tracing sees owner's weights as attributes to freeze."""

    def __init__(self, owner: nn.Module, fn: Callable[[torch.Tensor], Outputs]):
        super().__init__()
        self.owner = owner
        self.fn = fn

    def forward(self, x: torch.Tensor):
        out = self.fn(x)
        return tuple(out) if isinstance(out, (list, tuple)) else out


def _as_tuple(out: Outputs) -> tuple:
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)


def _rtol(x: torch.Tensor) -> float:
    """1e-3; 2e-2 on a GPU with TF32 convolutions (torch's default), whose rounding differs between the
    folded graph and eager by more than 1e-3 (seen on an H100) — still far below a wrong trace's error."""
    return 2e-2 if x.is_cuda and torch.backends.cudnn.allow_tf32 else 1e-3


def _close(a: Outputs, b: Outputs, rtol: float = 1e-3) -> bool:
    a, b = _as_tuple(a), _as_tuple(b)
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if u.shape != v.shape or u.dtype != v.dtype:
            return False
        scale = float(u.abs().max()) if u.numel() else 0.0
        if not torch.allclose(u.float(), v.float(), rtol=rtol, atol=0.1 * rtol * max(scale, 1.0)):
            return False
    return True


@torch.no_grad()
def _frozen_graph(owner: nn.Module, fn: Callable[[torch.Tensor], Outputs], example: torch.Tensor, name: str):
    """The frozen graph of fn at example's shape, or None (tracing failed / outputs differ from eager)."""
    if owner.training:
        raise ValueError("freeze_for_inference needs an eval-mode module (BatchNorm would be folded wrongly)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about python values that are constant here anyway
            graph = torch.jit.freeze(torch.jit.trace(_Bound(owner, fn).eval(), example, check_trace=False))
            ok = _close(graph(example), fn(example), _rtol(example))
    except Exception as e:  # noqa: BLE001 — any tracing failure means: run eager
        log.info("%s: eager inference (could not freeze a graph: %s)", name, str(e).splitlines()[0][:120])
        return None
    if not ok:
        log.warning("%s: the frozen graph's outputs differ from eager ones; running eager", name)
        return None
    return graph


class InferenceGraph:
    """fn(x) through a frozen graph, built on the first call and used for inputs of that shape only (a
    trace may bake sizes in); other shapes — a dataset's last, smaller batch — run eager. One object
    serves every dataset of an evaluation: tracing costs ~1 s, a 500-image corruption cell ~0.7 s."""

    def __init__(self, owner: nn.Module, fn: Callable[[torch.Tensor], Outputs], name: str = "model"):
        self.owner, self.fn, self.name = owner, fn, name
        self.shape: Optional[tuple] = None
        self.graph = None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor):
        if self.shape is None:
            self.shape = tuple(x.shape)
            self.graph = _frozen_graph(self.owner, self.fn, x, self.name)
        if self.graph is not None and tuple(x.shape) == self.shape:
            return self.graph(x)
        return self.fn(x)

    @property
    def frozen(self) -> bool:
        return self.graph is not None


def freeze_for_inference(owner: nn.Module, fn: Callable[[torch.Tensor], Outputs], example: torch.Tensor,
                         name: str = "model") -> Callable[[torch.Tensor], Outputs]:
    """fn(x) as a frozen graph checked on `example` (fn uses only `owner`'s modules, in eval mode), or fn
    itself when tracing fails or the graph's outputs on `example` differ from eager ones."""
    run = InferenceGraph(owner, fn, name)
    run(example)
    return run if run.frozen else fn
