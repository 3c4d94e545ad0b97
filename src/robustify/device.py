"""Where the models run: params `device` (auto = the GPU when torch sees one, else the CPU).

Datasets, views and caches stay in host memory as numpy arrays. A batch goes to the device where a
numpy array becomes a tensor for a model (`tensor`) and comes back where a result becomes numpy again
(`numpy`); models go to the device when they are built or loaded (`place`). So a GPU job of the SLURM
profile trains and evaluates on its GPU, and on a machine without one nothing changes.

Under `torchrun` each rank's `cuda` is its local GPU (LOCAL_RANK), from the first model it builds on.
"""

from __future__ import annotations

import os
import re
from typing import TypeVar

import numpy as np
import torch
import torch.nn as nn

from .config import DEVICE_PATTERN
from .errors import ConfigError

SPEC = re.compile(DEVICE_PATTERN)

_current = torch.device("cpu")
M = TypeVar("M", bound=nn.Module)


def resolve(spec: str) -> torch.device:
    """'auto' → cuda when available, else cpu; 'cpu', 'cuda', 'cuda:N' as torch spells them."""
    if not SPEC.match(str(spec)):
        raise ConfigError(f"device '{spec}' is not one of auto, cpu, cuda, cuda:N; fix params device")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{spec}' asked for, but torch sees no GPU (torch {torch.__version__}); "
                              "set params device to auto or cpu, or install a CUDA build of torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{spec}' asked for, but torch sees {torch.cuda.device_count()} GPU(s); "
                              "pick an index below that or set device: cuda")
    return dev


def use(spec: str | torch.device) -> torch.device:
    """Make `spec` the device of this process (commands call it once, from params)."""
    global _current
    dev = spec if isinstance(spec, torch.device) else resolve(spec)
    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # torchrun: this rank's GPU from the start
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)
    _current = dev
    return dev


def current() -> torch.device:
    return _current


def place(model: M) -> M:
    """`model` on the current device (in place, as nn.Module.to)."""
    return model.to(_current)


def tensor(a: np.ndarray) -> torch.Tensor:
    """A host array as a tensor on the current device (no copy on the CPU)."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(_current)


def numpy(t: torch.Tensor) -> np.ndarray:
    """A result back in host memory."""
    return t.detach().cpu().numpy()
