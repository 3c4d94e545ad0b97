"""Frozen-feature extraction with an on-disk cache (features of a frozen network never change)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..device import numpy, tensor
from ..errors import DataError
from ..io import save_npz
from ..models.preprocess import Preprocess

log = logging.getLogger(__name__)


@torch.no_grad()
def extract(fn: Callable[[torch.Tensor], torch.Tensor], preprocess: Preprocess, x: np.ndarray,
            batch_size: int = 128, desc: str = "features") -> np.ndarray:
    """Apply `fn` to preprocessed uint8 NHWC images in batches; returns float32 features."""
    out = []
    for i in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", leave=False, disable=None):  # silent off a terminal
        out.append(numpy(fn(preprocess(tensor(x[i:i + batch_size]))).float()))
    return np.concatenate(out)


def pooled_features(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Penultimate (pre-logits) features of a timm-style model."""
    return lambda t: model.forward_head(model.forward_features(t), pre_logits=True)


def cached(path: Path, compute: Callable[[], np.ndarray], key: str) -> tuple[np.ndarray, float]:
    """Features from `path` if it holds `key`, else computed and stored atomically.

    Returns (features, seconds the computation took) — the one-off cost is kept with the cache so
    records report the same cost whether or not the cache was hit.
    """
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["key"]) == key:
                    return f["features"], float(f["seconds"])
            log.info("feature cache %s is stale; recomputing", path)
        except (OSError, ValueError, KeyError, EOFError):
            log.warning("feature cache %s is unreadable; recomputing", path)
    t0 = time.perf_counter()
    feats = compute()
    seconds = time.perf_counter() - t0
    if not np.isfinite(feats).all():
        raise DataError(f"non-finite features for {key}; check the model weights and inputs")
    save_npz(path, features=feats, key=np.array(key), seconds=np.array(seconds))
    return feats, seconds
