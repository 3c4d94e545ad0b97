"""Data-parallel training under `torchrun` (paper preset): one process per GPU, DistributedDataParallel.

Without torchrun (WORLD_SIZE unset or 1) every helper is a no-op, so the training loops run unchanged
on one machine. Under `torchrun --nproc_per_node N robustify <train command> …` each rank takes its
contiguous share of every global batch (same data order on all ranks: it depends only on the seed),
DDP averages the gradients, and the weights follow single-process training with that global batch
(exactly for models without BatchNorm; BatchNorm layers see per-rank statistics unless converted to
SyncBatchNorm on GPU). With params device on a GPU (auto on a GPU node) each rank uses its local GPU and
NCCL; on the CPU, gloo. Only rank 0 writes files; logged numbers are all-reduced first.

    dist = distributed.setup()                       # reads RANK / WORLD_SIZE / LOCAL_RANK
    ddp = distributed.wrap(model, dist)              # DDP when world_size > 1, else the model
    local, scale = distributed.shard(batch_idx, dist)
    loss = loss_fn(ddp(x[local]), y[local]) * scale  # scale: unequal shards still average exactly
    if dist.is_main: save(...)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as td
import torch.nn as nn


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def backend(dev: Optional[torch.device] = None) -> str:
    """nccl when the processes train on GPUs (params device), gloo on CPU."""
    from .. import device

    dev = device.current() if dev is None else dev
    return "nccl" if dev.type == "cuda" and td.is_nccl_available() else "gloo"


def setup(env: Optional[dict] = None) -> DistEnv:
    """Join the process group described by torchrun's variables (no-op for a single process)."""
    from .. import device

    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(device=str(device.current()))
    rank, local = int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"]))
    be = backend()
    where = "cpu"
    if be == "nccl":  # one GPU per rank: the rank's local GPU becomes this process's device
        where = str(device.use(f"cuda:{local}"))
    if not td.is_initialized():
        td.init_process_group(be, rank=rank, world_size=world)  # MASTER_ADDR/PORT from torchrun
    return DistEnv(rank, world, local, where)


def current() -> DistEnv:
    """The process group already joined (or a single process)."""
    from .. import device

    where = str(device.current())
    if td.is_available() and td.is_initialized():
        return DistEnv(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_RANK", td.get_rank())), where)
    return DistEnv(device=where)


def wrap(module: nn.Module, dist: DistEnv, **ddp_kwargs) -> nn.Module:
    """DistributedDataParallel around `module` when there is more than one process; else `module`."""
    if not dist.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [dist.local_rank] if dist.device.startswith("cuda") else None
    return DDP(module, device_ids=ids, **ddp_kwargs)


class StepModule(nn.Module):
    """Adapter for loops whose loss is not `model(x)` (e.g. distillation's `step_loss(student, …)`):
    DDP syncs gradients only through its own forward, so the whole step becomes that forward."""

    def __init__(self, module: nn.Module, step: Callable):
        super().__init__()
        self.module, self.step = module, step

    def forward(self, *args, **kwargs):
        return self.step(self.module, *args, **kwargs)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain model inside DDP / StepModule wrappers (what gets saved)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    while isinstance(module, (DDP, StepModule)):
        module = module.module
    return module


def shard(indices, dist: DistEnv):
    """(this rank's contiguous share of a global batch, loss scale).

    DDP averages gradients over ranks; scaling each rank's mean loss by world·n_local/n_global makes
    that average equal the gradient of the global-batch mean even when the batch does not divide evenly.
    """
    if not dist.enabled:
        return indices, 1.0
    n = len(indices)
    bounds = np.linspace(0, n, dist.world_size + 1).round().astype(int)
    lo, hi = int(bounds[dist.rank]), int(bounds[dist.rank + 1])
    return indices[lo:hi], dist.world_size * (hi - lo) / max(n, 1)


def all_reduce_mean(value: float, dist: DistEnv, weight: float = 1.0) -> float:
    """Weighted mean of a per-rank number over all ranks (e.g. the loss of each shard, weighted by its size)."""
    if not dist.enabled:
        return float(value)
    t = torch.tensor([float(value) * weight, float(weight)], dtype=torch.float64, device=dist.device)  # nccl: GPU tensors
    td.all_reduce(t)
    return float(t[0] / t[1])


def all_reduce_sum(value: float, dist: DistEnv) -> float:
    """Sum of a per-rank number over all ranks (e.g. per-shard loss sums)."""
    if not dist.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=dist.device)
    td.all_reduce(t)
    return float(t[0])


def barrier(dist: DistEnv) -> None:
    if dist.enabled:
        td.barrier()


def cleanup(dist: DistEnv) -> None:
    if dist.enabled and td.is_initialized():
        td.destroy_process_group()
