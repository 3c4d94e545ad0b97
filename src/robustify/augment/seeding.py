"""Per-image random streams that do not depend on batching: each image's stream is keyed by a seed,
a tag (which view), and either its index in a dataset or the hash of its pixels."""

from __future__ import annotations

import hashlib
import numpy as np


def content_keys(images: np.ndarray) -> list[int]:
    """A 63-bit key per image from its pixels (the same image gives the same key in any batch)."""
    return [int.from_bytes(hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=8).digest(), "little") >> 1
            for im in images]


def image_rng(seed: int, key: int, *tags: int) -> np.random.Generator:
    """numpy Generator for one image: SeedSequence(seed, key, tags…)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), int(key), *map(int, tags)]))


def torch_seed(rng: np.random.Generator) -> int:
    """A torch manual_seed value drawn from a numpy stream."""
    return int(rng.integers(0, 2**62))


TAG = {"augmix": 1, "deepaugment": 2, "pixmix": 3, "choice": 4, "cropflip": 5}

