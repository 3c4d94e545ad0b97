"""Procedurally generated fractal pictures for PixMix (our own iterated-function-system code).

The original PixMix mixing set (fractals + feature visualisations downloaded from the authors) is not
reachable offline, so the embedded default renders its own: each picture is the attractor of a random
IFS of 2–4 contractive affine maps (FractalDB-style: maps drawn in [-1, 1], rescaled to singular
values ≤ `max_sv`, chosen with probability ∝ |det A|), run as a vectorised chaos game, coloured by
the map that produced each point over a random background, rendered at 2× and box-downsampled.
Pictures covering less than 5% of the canvas are redrawn. Deterministic under `seed`.
"""

from __future__ import annotations

import functools

import numpy as np


def _ifs(rng: np.random.Generator, max_sv: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(rng.integers(2, 5))
    a = rng.uniform(-1, 1, size=(n, 2, 2))
    for i in range(n):  # contractive: singular values in (0.2, max_sv)
        u, s, vt = np.linalg.svd(a[i])
        s = rng.uniform(0.2, max_sv, size=2)
        a[i] = u @ np.diag(s) @ vt
    b = rng.uniform(-1, 1, size=(n, 2))
    p = np.abs(np.linalg.det(a)) + 1e-3
    return a, b, p / p.sum()


def _render(rng: np.random.Generator, size: int, a: np.ndarray, b: np.ndarray, prob: np.ndarray,
            chains: int = 512, steps: int = 48, burn_in: int = 8) -> np.ndarray:
    pts = rng.uniform(-1, 1, size=(chains, 2))
    coords, which = [], []
    for t in range(steps):
        k = rng.choice(len(prob), size=chains, p=prob)
        pts = np.einsum("nij,nj->ni", a[k], pts) + b[k]
        if t >= burn_in:
            coords.append(pts.copy())
            which.append(k)
    xy = np.concatenate(coords)
    k = np.concatenate(which)
    lo, hi = xy.min(0), xy.max(0)
    span = max(float((hi - lo).max()), 1e-6)
    big = 2 * size
    ij = np.clip(((xy - lo) / span * (big - 1)).round().astype(int), 0, big - 1)
    palette = rng.uniform(0, 1, size=(len(prob), 3))
    background = rng.uniform(0, 1, size=3) * (0.35 if rng.random() < 0.5 else 1.0)
    canvas = np.empty((big, big, 3))
    canvas[:] = background
    canvas[ij[:, 1], ij[:, 0]] = palette[k]
    img = canvas.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    coverage = np.unique(ij[:, 1] * big + ij[:, 0]).size / big**2
    return (img * 255).round().astype(np.uint8), coverage


@functools.lru_cache(maxsize=4)
def fractal_pictures(n: int, size: int = 32, seed: int = 0, max_sv: float = 0.8) -> np.ndarray:
    """`n` fractal pictures, uint8 (n, size, size, 3). Cached per (n, size, seed, max_sv)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF4AC7A1]))
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    i = 0
    while i < n:
        a, b, p = _ifs(rng, max_sv)
        img, coverage = _render(rng, size, a, b, p)
        if coverage < 0.05:
            continue
        out[i] = img
        i += 1
    out.setflags(write=False)
    return out
