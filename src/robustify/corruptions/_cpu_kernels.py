"""Compiled CPU loops (numba, a dependency of the reference package) for the two corruptions whose
work is a per-image sequence of shifted copies; torch versions run on other devices."""

from __future__ import annotations

import numba
import numpy as np

# numba's own worker threads: its OpenMP layer would share libgomp with torch and reset torch's
# intra-op thread count (seen: 1 -> 2 after the first parallel call)
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"


@numba.njit(cache=True, parallel=True)
def shifted_sum(xp, dy, dx, wt, p, out):  # pragma: no cover - compiled
    """out[b] += Σ_j wt[b, j] · xp[b, :, p-dy[b,j] : +H, p-dx[b,j] : +W] (stops at the first zero weight)."""
    nb, nc, h, w = out.shape
    for b in numba.prange(nb):
        for j in range(dy.shape[1]):
            ww = wt[b, j]
            if ww == 0:
                break
            a = p - dy[b, j]
            c = p - dx[b, j]
            for ch in range(nc):
                for i in range(h):
                    for k in range(w):
                        out[b, ch, i, k] += ww * xp[b, ch, a + i, c + k]
    return out


@numba.njit(cache=True, parallel=True)
def copy_shuffle(x, offsets, delta):  # pragma: no cover - compiled
    """The reference glass-blur loop on (B, H, W, C) with given (dx, dy) offsets (B, nh, nw, 2): visit
    inner pixels from the bottom-right backwards, copy x[h + dy, w + dx] into x[h, w] (in place)."""
    nb, h, w, nc = x.shape
    for b in numba.prange(nb):
        for i in range(h - 2 * delta):
            hh = h - delta - i
            for j in range(w - 2 * delta):
                ww = w - delta - j
                sy = hh + offsets[b, i, j, 1]
                sx = ww + offsets[b, i, j, 0]
                for ch in range(nc):
                    x[b, hh, ww, ch] = x[b, sy, sx, ch]
    return x


def motion_sum(xp: np.ndarray, dy: np.ndarray, dx: np.ndarray, wt: np.ndarray, p: int, shape) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float32)
    return shifted_sum(np.ascontiguousarray(xp, dtype=np.float32), dy.astype(np.int64), dx.astype(np.int64),
                       wt.astype(np.float32), p, out)
