"""Trunk outputs shared by the evaluations of distilled students with one frozen trunk.

Every distilled student of a model (ours and APT, each teacher, scheme and seed) keeps the pretrained
trunk frozen, so its output on an evaluation image is the same for all of them — and it is most of a
student's inference cost (ResNet-56: 24 of 29 block evaluations; Lite0: the whole body but one block).
The pretrained original and its linear probe have that trunk too; evaluation cuts them at the same
block (`models.student.SplitSingleHead`, `evaluate.runner.single_head`) so that they read it as well.
The first evaluation stores the trunk's output per dataset (float32, .npz under
<data.root>/cache/eval_trunk/); the others run only the tunable part and the heads.

A file is keyed by the trunk's weight fingerprint, the model's input size, the batch size, whether
graphs are frozen, and a digest of the dataset's images and labels: a changed dataset or trunk never
hits. Results do not depend on a hit: both paths run the trunk into float32 batch by batch and the
rest from there. Files are written atomically. Before evaluating, `prepare` fills the cache for all
of a job's datasets under one lock file per dataset (flock): a dataset another job is computing is
left for later, so two jobs that start together on one trunk (two cores, two students) compute
disjoint halves instead of the same bytes twice (the `945df58` default run computed both of its
trunks twice so). A dataset is held in memory once (its images for the digest, then its trunk
outputs): meant for CIFAR-scale suites, which is why the paper preset turns it off.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..io import save_npz
from ..models.frozen import InferenceGraph
from ..train.cache import batched, key_of, read_cache
from .onepass import after_trunk, iterate_arrays

FORMAT = "robustify-eval-trunk-v1"


def has_frozen_trunk(model: nn.Module) -> bool:
    return callable(getattr(model, "trunk_fingerprint", None)) and hasattr(model, "forward_trunk")


def _digest(batches: list[tuple[np.ndarray, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for x, y in batches:
        h.update(repr((x.shape, str(x.dtype))).encode())
        h.update(np.ascontiguousarray(x).tobytes())
        h.update(np.asarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


class SharedTrunk:
    """Per dataset: (trunk output, label) batches from the cache, or computed and stored; `rest` maps a
    trunk output to the deterministic part's outputs (frozen graphs when `freeze`)."""

    def __init__(self, root: Path, model: nn.Module, preprocess: Callable, image_size: int, batch_size: int,
                 freeze: bool, name: str):
        self.fingerprint = model.trunk_fingerprint()
        self.dir = Path(root) / self.fingerprint[:16]
        self.batch_size, self.hits, self.misses = int(batch_size), 0, 0  # datasets read / computed by this job
        self._computed: set[Path] = set()
        self.settings = (FORMAT, self.fingerprint, int(image_size), self.batch_size, bool(freeze))
        rest = after_trunk(model)
        model.eval()
        self.preprocess = preprocess
        self.trunk = InferenceGraph(model, model.forward_trunk, f"{name} trunk") if freeze else model.forward_trunk
        self.rest = InferenceGraph(model, rest, f"{name} after the trunk") if freeze else rest

    def path(self, name: str, digest: str) -> Path:
        return self.dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}_{key_of(*self.settings, name, digest)}.npz"

    def _locate(self, es) -> tuple[list, Path]:
        """`es` as (images, labels) batches and the cache file of its trunk outputs."""
        raw = list(es.batches(self.batch_size))
        return raw, self.path(es.name, _digest(raw))

    @torch.no_grad()
    def batches(self, es) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The dataset `es` as (float32 trunk output, labels) batches of the evaluation batch size."""
        raw, path = self._locate(es)
        arrays = read_cache(path)
        if arrays is not None and str(arrays.get("format")) == FORMAT:
            self.hits += path not in self._computed
            return iterate_arrays(arrays["z"], arrays["y"], self.batch_size)
        if not raw:
            return iter(())
        return iterate_arrays(*self._compute(raw, path), self.batch_size)

    def _compute(self, raw: list, path: Path) -> tuple[np.ndarray, np.ndarray]:
        self.misses += 1
        self._computed.add(path)
        # same batch boundaries as `raw`: the frozen graph runs on the same shapes as on a cold cache
        z = batched(lambda b: self.trunk(self.preprocess(b)), np.concatenate([x for x, _ in raw]), self.batch_size)
        y = np.concatenate([np.asarray(b, dtype=np.int64) for _, b in raw])
        save_npz(path, format=np.asarray(FORMAT), z=z, y=y)
        return z, y

    @torch.no_grad()
    def prepare(self, sets) -> None:
        """Fill the cache for every dataset of `sets`; where another job holds a dataset's lock (it is
        computing it), go on with the next one and come back to wait for it at the end."""
        later = [es for es in sets if not self._fill(es, wait=False)]
        for es in later:
            self._fill(es, wait=True)

    def _fill(self, es, wait: bool) -> bool:
        """Compute and store `es`'s trunk outputs unless they are stored; False if another job holds its lock."""
        raw, path = self._locate(es)
        if not raw or path.is_file():
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock")
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            except OSError:  # a filesystem without flock (some cluster mounts): compute unlocked, atomically
                if not path.is_file():
                    self._compute(raw, path)
                return True
            try:
                if not path.is_file():  # the holder we waited for has stored it
                    self._compute(raw, path)
                lock.unlink(missing_ok=True)  # the cache file exists now: later jobs never reach the lock
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return True
