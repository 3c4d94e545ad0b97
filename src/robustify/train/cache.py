"""Frozen-trunk cache: what distillation needs, computed once and stored as .npz.

Because the student's trunk never changes, its outputs for the clean training images and for K
pre-generated augmented views per image are computed once; training then runs only the tunable part
and the heads. Three files, each keyed by a hash of everything it depends on, so students and
variants share what they can:

  views_{scheme}_s{seed}_K{K}_{key}.npz   uint8 views [K, N, H, W, 3]      (shared by all students/teachers)
  trunk_{student}_{key}.npz               trunk outputs of clean images and views, the frozen original
                                          student's logits on the clean images (T_orig), labels
  teacher_{teacher}_{key}.npz             the robust teacher's logits on the views (T_small)

Each file stores the seconds it took to build (`build_s`), so a record can count the one-off cost
once even when another job built it. The sha256 of every file goes into the record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from ..device import numpy, tensor
from ..errors import DataError
from ..io import save_npz, sha256_file
from ..models.frozen import InferenceGraph

log = logging.getLogger("robustify")

VIEW_SEED_OFFSET = 7_000_000  # distillation views use their own seed stream, never the teacher's training views


def key_of(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def images_digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def view_seed(seed: int, k: int) -> int:
    """Seed of view set k of a distillation run with `seed` (disjoint from teacher-training seeds)."""
    return VIEW_SEED_OFFSET + 1000 * int(seed) + int(k)


def default_view_fn(scheme: str, settings=None) -> Callable[[np.ndarray, int], np.ndarray]:
    """views(images, seed) → one view per image via `robustify.augment.make_views`."""
    from ..augment import make_views

    return lambda images, seed: make_views(images, scheme, seed, settings=settings)


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, batch: int, desc: str = "") -> np.ndarray:
    """Apply `fn` (e.g. an `InferenceGraph`) to uint8 NHWC images in batches; float32 numpy out."""
    from tqdm import tqdm

    outs = []
    for i in tqdm(range(0, len(x), batch), desc=desc, leave=False, disable=None):
        outs.append(numpy(fn(tensor(x[i:i + batch])).float()))
    return np.concatenate(outs) if outs else np.zeros((0,))


def read_cache(path: Path) -> Optional[dict]:
    """The arrays of an .npz cache file, or None when it is missing or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception:  # truncated/garbage cache: rebuild it
        log.warning("%s: unreadable cache, rebuilding", path)
        return None


@dataclass
class CacheFile:
    path: Path
    arrays: dict
    sha256: str
    build_s: float


def cached(path: Path, build: Callable[[], dict]) -> CacheFile:
    """Load `path` or build, time and save it (atomically)."""
    arrays = read_cache(path)
    if arrays is None:
        t0 = time.perf_counter()
        arrays = build()
        arrays["build_s"] = np.float64(time.perf_counter() - t0)
        save_npz(path, **arrays)
        log.info("cache built: %s (%.1f s)", path, float(arrays["build_s"]))
    return CacheFile(path, arrays, sha256_file(path), float(arrays["build_s"]))


def build_views(cache_dir: Path, images: np.ndarray, scheme: str, seed: int, k_views: int,
                view_fn: Callable[[np.ndarray, int], np.ndarray], settings_key: str = "") -> CacheFile:
    key = key_of("views", images_digest(images), scheme, seed, k_views, VIEW_SEED_OFFSET, settings_key)
    path = cache_dir / f"views_{scheme}_s{seed}_K{k_views}_{key}.npz"
    return cached(path, lambda: {"views": np.stack([view_fn(images, view_seed(seed, k)) for k in range(k_views)])})


def build_trunk(cache_dir: Path, student: nn.Module, preprocess: nn.Module, images: np.ndarray, labels: np.ndarray,
                views: CacheFile, student_key: str, batch: int, dtype: str = "float16", name: str = "student") -> CacheFile:
    """Trunk outputs of clean images and views + T_orig (the student at init, combined head, no dropout)."""
    key = key_of("trunk", student_key, images_digest(images), views.sha256, dtype)
    path = cache_dir / f"trunk_{name}_{key}.npz"

    def build() -> dict:
        student.eval()
        trunk = InferenceGraph(student, lambda x: student.forward_trunk(preprocess(x)), "trunk")
        z_clean = batched(trunk, images, batch, "trunk clean")
        t_orig = np.concatenate([numpy(original_logits(student, tensor(z_clean[i:i + batch])))
                                 for i in range(0, len(z_clean), batch)])
        z_views = np.stack([batched(trunk, v, batch, f"trunk view {k}") for k, v in enumerate(views.arrays["views"])])
        return {"z_clean": z_clean.astype(dtype), "z_views": z_views.astype(dtype), "t_orig": t_orig.astype(np.float32),
                "y": labels.astype(np.int64)}

    return cached(path, build)


def build_teacher(cache_dir: Path, teacher: nn.Module, preprocess: nn.Module, views: CacheFile, teacher_key: str,
                  batch: int, name: str = "teacher") -> CacheFile:
    key = key_of("teacher", teacher_key, views.sha256)
    path = cache_dir / f"teacher_{name}_{key}.npz"

    def build() -> dict:
        teacher.eval()
        fn = InferenceGraph(teacher, lambda x: teacher(preprocess(x)), "teacher")
        return {"t_views": np.stack([batched(fn, v, batch, f"teacher view {k}") for k, v in enumerate(views.arrays["views"])]).astype(np.float32)}

    return cached(path, build)


@torch.no_grad()
def original_logits(student: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Logits of the frozen original student from trunk output `z`: the combined head at init, no dropout."""
    was = student.training
    student.eval()
    out = student.forward_head("combined", student.forward_tunable(z))
    student.train(was)
    return out


def check_shapes(trunk: CacheFile, teacher: Optional[CacheFile], n: int, k_views: int) -> None:
    z = trunk.arrays["z_views"]
    if z.shape[0] != k_views or z.shape[1] != n or trunk.arrays["z_clean"].shape[0] != n:
        raise DataError(f"{trunk.path}: cache holds {z.shape[:2]} views×images, expected {(k_views, n)}; delete it and rerun")
    if teacher is not None and teacher.arrays["t_views"].shape[:2] != (k_views, n):
        raise DataError(f"{teacher.path}: teacher cache does not match the views; delete it and rerun")
