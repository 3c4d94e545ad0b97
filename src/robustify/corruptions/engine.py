"""`corrupt`: validate a batch, then run one corruption at one severity with our engine or the reference."""

from __future__ import annotations

import os
import zlib
from typing import Optional

import numpy as np

from ..errors import ConfigError, DataError
from .names import ENGINES, SEVERITIES, TABLES
from .registry import get_corruption, unknown_name_message
from .tables import OPTIONS, TABLE_CONSTANTS

MAX_PIXELS_PER_STEP = 1 << 19  # micro-batch bound (memory); results never depend on it


def image_seeds(base_seed: int, indices: np.ndarray, name: str, severity: int) -> np.ndarray:
    """Deterministic int64 seeds, one per image index, for (base_seed, corruption, severity).

    A splitmix64 hash of the four keys: the same image always gets the same seed whatever the
    batch, chunk or worker it lands in.
    """
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    key = np.uint64((int(base_seed) * 1_000_003 + zlib.crc32(name.encode()) * 7 + int(severity)) & ((1 << 64) - 1))
    with np.errstate(over="ignore"):
        z = _mix(_mix(key) ^ idx)
    return (z & np.uint64((1 << 63) - 1)).astype(np.int64)


def _mix(z):
    z = np.asarray(z, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def check_request(name: str, severity: int, table: str, engine: str) -> None:
    """Raise a one-line ConfigError for an unknown corruption, severity, table or engine."""
    if table not in TABLES:
        raise ConfigError(f"unknown severity table '{table}'; use one of {', '.join(TABLES)}")
    if engine not in ENGINES:
        raise ConfigError(f"unknown corruption engine '{engine}'; use one of {', '.join(ENGINES)}")
    get_corruption(name)
    if name not in TABLE_CONSTANTS[table]:
        raise ConfigError(f"corruption '{name}' has no constants in table '{table}'; add them to corruptions/tables.py")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or int(severity) not in SEVERITIES:
        raise ConfigError(f"severity must be an integer 1..5, got {severity!r}; pick from {list(SEVERITIES)}")
    if engine == "reference" and table != "imagenet":
        raise ConfigError(f"engine 'reference' (imagecorruptions) only has the 'imagenet' table; use --table imagenet or --engine ours")
    if engine == "reference":
        from . import reference

        if name not in reference.reference_names():
            raise ConfigError(unknown_name_message(name, reference.reference_names()) + " (not in the reference package)")


def check_images(images: np.ndarray, seeds: np.ndarray, engine: str) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        desc = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"images must be a uint8 N×H×W×3 array, got {desc}; convert them (np.uint8, NHWC, RGB)")
    if len(images) == 0:
        raise DataError("no images to corrupt (empty batch); check the dataset or subset size")
    seeds = np.asarray(seeds)
    if seeds.shape != (len(images),) or not np.issubdtype(seeds.dtype, np.integer):
        raise DataError(f"seeds must be one integer per image ({len(images)}), got {seeds.dtype} {seeds.shape}; use image_seeds()")
    if engine == "reference" and min(images.shape[1:3]) < 32:
        raise DataError(f"the reference package needs images of at least 32×32 px, got {images.shape[1]}×{images.shape[2]}; use --engine ours")
    return seeds.astype(np.int64)


def corrupt(images: np.ndarray, name: str, severity: int, seeds: np.ndarray, table: str = "cifar",
            engine: str = "ours", device: Optional[str] = None) -> np.ndarray:
    """Corrupt a batch (uint8 N×H×W×3) with `name` at `severity`; one seed per image. Returns uint8 NHWC.

    table: "cifar" (CIFAR-10-C constants) or "imagenet" (ImageNet-C constants, as the reference
    package applies them). engine: "ours" (batched torch, on `device`, default CUDA when present)
    or "reference" (imagecorruptions-imaug per image, imagenet table only).
    """
    check_request(name, severity, table, engine)
    seeds = check_images(images, seeds, engine)
    severity = int(severity)
    if engine == "reference":
        from .reference import reference_corrupt

        return reference_corrupt(images, name, severity, seeds)
    return _ours(images, name, severity, seeds, table, device)


_MALLOC_TUNED = False


def keep_freed_memory() -> None:
    """Let glibc keep freed buffers for reuse instead of returning them to the OS (once per process).

    The engine allocates many short-lived MB-sized tensors; by default glibc maps each one fresh and
    every first touch of a page faults, which on a loaded VM costs more than the arithmetic (measured
    here: 30 ms vs 0.2 ms for one 600k-element multiply). Opt out with ROBUSTIFY_NO_MALLOPT=1.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("ROBUSTIFY_NO_MALLOPT"):
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve big blocks from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: do not give the heap top back after every free
    except (OSError, AttributeError):
        pass


def _ours(images, name, severity, seeds, table, device) -> np.ndarray:
    import torch

    from .ops import ImageRng

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        keep_freed_memory()
    spec = get_corruption(name)
    c = TABLE_CONSTANTS[table][name][severity - 1]
    opt = OPTIONS[table]
    n, h, w, _ = images.shape
    step = max(1, MAX_PIXELS_PER_STEP // (h * w))
    out = np.empty_like(images)
    with torch.inference_mode():
        for i in range(0, n, step):
            x = torch.as_tensor(images[i:i + step], device=dev)
            y = spec.fn(x, c, ImageRng(seeds[i:i + step].tolist(), dev), opt)
            if y.dtype != torch.uint8:
                y = y.clamp(0, 255).floor_()  # the reference's np.uint8 truncation (copy_ casts)
            torch.from_numpy(out[i:i + step]).copy_(y)  # cast, layout and device in one copy
    return out
