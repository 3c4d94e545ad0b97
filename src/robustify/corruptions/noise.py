"""Noise corruptions: gaussian, shot (Poisson) and impulse (salt & pepper) noise."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy import stats

from .ops import ImageRng, as_rows, cpu_kernel, use_compiled
from .registry import register_corruption


@register_corruption("gaussian_noise")
def gaussian_noise(x: torch.Tensor, c: float, rng: ImageRng, opt: dict) -> torch.Tensor:
    if use_compiled(x) and x[0].numel() >= 16:  # torch's CPU randn compiled into one pass straight to uint8
        rows = as_rows(x)
        out = cpu_kernel("gaussian_noise")(rows, rng.torch_seeds("gaussian_noise"), c, np.empty_like(rows))
        return torch.from_numpy(out.reshape(x.shape))
    n = rng.randn("gaussian_noise", *x.shape[1:])
    return (x.float() / 255.0 + n * c).clamp_(0, 1) * 255


@functools.lru_cache(maxsize=16)
def _poisson_tables(c: float, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pixel value v: CDF of Poisson(v/255·c) over k = 0..⌈c⌉ (k ≥ c all clip to 255), the
    smallest k per u-bin (inverse-CDF start), and the reference's output uint8(clip(k/c, 0, 1)·255)."""
    kmax = int(np.ceil(c))
    lam = (np.arange(256) / 255.0) * c
    k = np.arange(kmax + 1)
    cdf = stats.poisson.cdf(k[None, :], lam[:, None])
    cdf[:, -1] = 1.0  # every k ≥ kmax gives the same output
    grid = np.arange(bins) / bins
    start = np.stack([np.searchsorted(row, grid, side="left") for row in cdf]).clip(0, kmax)
    out = np.uint8(np.clip(k / float(c), 0, 1) * 255)
    # the narrowest integer type: the table is read at random, a smaller one stays in a nearer cache
    return cdf.astype(np.float32), start.astype(np.uint8 if kmax < 256 else np.int32), out


@register_corruption("shot_noise")
def shot_noise(x: torch.Tensor, c: float, rng: ImageRng, opt: dict) -> torch.Tensor:
    """Exact inverse-CDF Poisson sampling: only 256 distinct rates, so small tables replace sampling.

    CPU: compiled, with the uniforms from the kernels' counter-based generator (torch's CPU
    generator alone took longer than the whole compiled pass)."""
    bins = 256
    cdf_np, start_np, out_np = _poisson_tables(float(c), bins)
    if use_compiled(x):
        rows = as_rows(x)
        out = cpu_kernel("shot_noise")(rows, rng.keys("shot_noise"), cdf_np, start_np, out_np, np.empty_like(rows))
        return torch.from_numpy(out.reshape(x.shape))
    dev = x.device
    kp1 = cdf_np.shape[1]
    cdf = torch.as_tensor(cdf_np, device=dev).reshape(-1)
    start = torch.as_tensor(start_np.astype(np.int32), device=dev).reshape(-1)
    out_lut = torch.as_tensor(out_np, device=dev)
    u = rng.rand("shot_noise", *x.shape[1:]).reshape(-1)
    v = x.reshape(-1).int()
    k = start.index_select(0, v * bins + (u * bins).int())
    base = v * kp1
    for _ in range(2):  # a couple of vectorised steps resolve nearly everything...
        k += (cdf.index_select(0, base + k) < u).int()
    todo = (cdf.index_select(0, base + k) < u).nonzero().reshape(-1)
    while todo.numel():  # ...the rare rest exactly
        kk = k[todo] + 1
        k[todo] = kk
        todo = todo[cdf.index_select(0, base[todo] + kk) < u[todo]]
    return out_lut.index_select(0, k).reshape(x.shape)


@register_corruption("impulse_noise")
def impulse_noise(x: torch.Tensor, c: float, rng: ImageRng, opt: dict) -> torch.Tensor:
    """skimage random_noise('s&p', amount=c, salt_vs_pepper=0.5): per channel value, from the same
    stream the reference uses (np.random.default_rng(seed): flip draws, then salt draws). Untouched
    values survive the reference's v/255·255 truncation unchanged (all 256 checked): uint8 throughout.

    CPU: that stream compiled, flips and salts side by side (the salts start n draws on), 2× faster
    than numpy drawing them."""
    shape = tuple(x.shape[1:])
    n = int(np.prod(shape))
    if use_compiled(x):
        rows = as_rows(x)
        flip_max = np.uint64(math.floor(c * 2.0 ** 53))  # u = k · 2^-53 ≤ c  ⟺  k ≤ ⌊c · 2^53⌋ (exact)
        out = cpu_kernel("impulse_noise")(rows, rng.pcg64_states(n), flip_max, np.empty_like(rows))
        return torch.from_numpy(out.reshape(x.shape))
    u = np.empty((len(rng), 2, n))
    rng.generators_map(lambda i, g: g.random(out=u[i]))  # flip draws, then salt draws: one stream
    u = torch.as_tensor(u, device=x.device).reshape(len(rng), 2, *shape)
    flipped = u[:, 0] <= c
    salt = (u[:, 1] <= 0.5).to(torch.uint8) * 255
    return torch.where(flipped, salt, x)
