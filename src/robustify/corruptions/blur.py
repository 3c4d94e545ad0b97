"""Blur corruptions: defocus (disk), glass (blur + local pixel shuffle + blur), motion, zoom."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .ops import ImageRng, clipped_zoom, correlate, gaussian_filter, motion_blur as _motion_blur
from .registry import register_corruption


def nchw01(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def nhwc255(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul_(255).permute(0, 2, 3, 1)


@functools.lru_cache(maxsize=None)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The ImageNet-C antialiased disk: a binary disk, normalised, blurred by a tiny Gaussian (cv2)."""
    import cv2

    if radius <= 8:
        ax, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        ax, ksize = np.arange(-radius, radius + 1), (5, 5)
    xx, yy = np.meshgrid(ax, ax)
    d = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=np.float32)
    d /= np.sum(d)
    return cv2.GaussianBlur(d, ksize=ksize, sigmaX=alias_blur)


@register_corruption("defocus_blur")
def defocus_blur(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    k = torch.as_tensor(disk_kernel(*c), device=x.device)
    return nhwc255(correlate(nchw01(x), k, "reflect101"))


def local_shuffle(x: torch.Tensor, offsets: torch.Tensor, delta: int) -> torch.Tensor:
    """The reference glass-blur pixel loop, in parallel.

    The reference visits inner pixels (h, w) from the bottom-right corner backwards and does
    `x[h, w], x[h', w'] = x[h', w'], x[h, w]` on array views, which *copies* x[h', w'] into x[h, w]
    (it is not a swap). A pixel therefore ends up with the value its source had when it was visited:
    the source's own final value if the source was visited earlier (later in raster order), else the
    source's old value. Following those links to their end (pointer jumping) gives the same result.

    x: (B, C, H, W); offsets: (B, nh, nw, 2) int64 (dx, dy) drawn in the reference's visiting order.
    """
    b, ch, h, w = x.shape
    dev = x.device
    hs = torch.arange(h - delta, delta, -1, device=dev)
    ws = torch.arange(w - delta, delta, -1, device=dev)
    if hs.numel() == 0 or ws.numel() == 0:
        return x
    pos = torch.arange(h * w, device=dev).expand(b, h * w).clone()
    src = pos.clone()
    inner = (hs[:, None] * w + ws[None, :]).reshape(-1)
    sh = hs[:, None] + offsets[..., 1]
    sw = ws[None, :] + offsets[..., 0]
    s_flat = (sh * w + sw).reshape(b, -1)
    src[:, inner] = s_flat
    s_inner = ((sh >= delta + 1) & (sh <= h - delta) & (sw >= delta + 1) & (sw <= w - delta)).reshape(b, -1)
    chain = s_inner & (s_flat > inner[None, :])
    parent = pos.clone()
    parent[:, inner] = torch.where(chain, s_flat, inner[None, :].expand_as(s_flat))
    while True:
        nxt = parent.gather(1, parent)
        if torch.equal(nxt, parent):
            break
        parent = nxt
    final = src.gather(1, parent)
    flat = x.reshape(b, ch, h * w)
    return flat.gather(2, final[:, None, :].expand(b, ch, h * w)).reshape(b, ch, h, w)


@register_corruption("glass_blur")
def glass_blur(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    sigma, delta, iterations = c
    h, w = x.shape[1:3]
    y = torch.floor(gaussian_filter(nchw01(x), sigma, "edge") * 255)  # np.uint8(... * 255) truncates
    nh, nw = max(0, h - 2 * delta), max(0, w - 2 * delta)
    if nh and nw:
        offs = rng.randint("glass_blur", -delta, delta, iterations, nh, nw, 2)
        if y.device.type == "cpu":  # the sequential loop itself, compiled
            from ._cpu_kernels import copy_shuffle
            from .ops import numba_threads

            numba_threads(torch.get_num_threads())
            arr = y.permute(0, 2, 3, 1).contiguous().numpy()
            o = offs.numpy()
            for i in range(iterations):
                copy_shuffle(arr, o[:, i], delta)
            y = torch.from_numpy(arr).permute(0, 3, 1, 2)
        else:
            for i in range(iterations):
                y = local_shuffle(y, offs[:, i], delta)
    return nhwc255(gaussian_filter(y / 255.0, sigma, "edge"))


@register_corruption("motion_blur")
def motion_blur(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    radius, sigma = c
    angles = np.array([r.uniform(-45, 45) for r in rng.legacy()])  # the reference's first draw
    y = _motion_blur(x.permute(0, 3, 1, 2).float(), angles, radius, sigma)
    return y.clamp_(0, 255).permute(0, 2, 3, 1)


def crop_zoomed(z: torch.Tensor, h: int, w: int, how: str) -> torch.Tensor:
    """Cut a zoomed layer back to h×w: the reference keeps the top-left, make_cifar_c.py the centre."""
    if how == "center":
        t0, t1 = (z.shape[-2] - h) // 2, (z.shape[-1] - w) // 2
        return z[..., t0:t0 + h, t1:t1 + w]
    return z[..., :h, :w]


@register_corruption("zoom_blur")
def zoom_blur(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    factors = np.arange(*c)
    y = x.permute(0, 3, 1, 2).float().div_(255.0)  # channels-last memory: the fast bilinear kernel
    h, w = y.shape[-2:]
    out = y.clone()
    for z in factors:
        out += crop_zoomed(clipped_zoom(y, float(z)), h, w, opt["zoom_crop"])
    return nhwc255(out.div_(len(factors) + 1))
