"""Blur corruptions: defocus (disk), glass (blur + local pixel shuffle + blur), motion, zoom."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .ops import (ImageRng, as_rows, clipped_zoom, correlate, cpu_kernel, gaussian_filter, motion_blur as _motion_blur,
                  motion_blur_nhwc, unit32, use_compiled, zoom_tables)
from .registry import register_corruption


def nchw01(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def nhwc255(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul_(255).permute(0, 2, 3, 1)


@functools.lru_cache(maxsize=None)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The ImageNet-C antialiased disk: a binary disk, normalised, blurred by a tiny Gaussian (cv2)."""
    import cv2

    d, ksize = _disk(radius)
    return cv2.GaussianBlur(d, ksize=ksize, sigmaX=alias_blur)


def _disk(radius: float) -> tuple[np.ndarray, tuple[int, int]]:
    if radius <= 8:
        ax, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        ax, ksize = np.arange(-radius, radius + 1), (5, 5)
    xx, yy = np.meshgrid(ax, ax)
    d = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=np.float32)
    d /= np.sum(d)
    return d, ksize


@functools.lru_cache(maxsize=None)
def disk_boxes(radius: float, alias_blur: float):
    """disk_kernel as (row half-widths, disk value, 1-D Gaussian taps) for the compiled
    box-sum filter, or None where it is not exactly disk ⊛ Gaussian: cv2 blurs the disk inside its
    canvas, so a disk reaching the canvas edge (radius ≥ 8) gets reflected values instead."""
    import cv2

    d, ksize = _disk(radius)
    q = ksize[0] // 2
    g = cv2.getGaussianKernel(ksize[0], alias_blur, cv2.CV_32F).astype(np.float64).ravel()
    full = cv2.sepFilter2D(np.pad(d.astype(np.float64), q), -1, g, g, borderType=cv2.BORDER_CONSTANT)
    inside, k = full[q:-q, q:-q], disk_kernel(radius, alias_blur)
    if np.abs(inside - k).max() > 1e-6 * k.max() or full.sum() - inside.sum() > 1e-6:
        return None
    counts = np.count_nonzero(d, axis=1)
    rows = np.nonzero(counts)[0]
    half = (counts[rows.min():rows.max() + 1] - 1) // 2  # each row of a disk is one centred run
    # the disk value that gives our product the kernel's own sum (the float32 kernel sums to 1 ± 1e-7):
    # on flat areas the result is then v / 255 · Σk as the reference's, which truncates the same way
    value = float(np.sum(k, dtype=np.float64)) / (counts.sum() * g.sum() ** 2)
    return half.astype(np.int64), value, g


@register_corruption("defocus_blur")
def defocus_blur(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    boxes = disk_boxes(*c) if use_compiled(x) else None
    if boxes is not None:  # box sums: a few reads per pixel instead of a 17×17 filter
        arr = np.ascontiguousarray(x.numpy())
        return torch.from_numpy(cpu_kernel("disk_blur")(arr, *boxes, np.empty_like(arr)))
    if use_compiled(x):  # cv2.filter2D as the reference (BORDER_REFLECT_101), float32, per image
        import cv2

        out = np.empty(tuple(x.shape), np.float32)
        for a, o in zip(x.float().div_(255.0).numpy(), out):
            cv2.filter2D(a, -1, disk_kernel(*c), dst=o)
        return torch.from_numpy(out).clamp_(0, 1).mul_(255)
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
    nh, nw = max(0, h - 2 * delta), max(0, w - 2 * delta)
    if use_compiled(x):  # channels-last memory throughout: no copies between the filters and the loop
        y = gaussian_filter(torch.from_numpy(unit32(x)).permute(0, 3, 1, 2), sigma, "edge")
        if nh and nw:  # the sequential loop compiled, with the uint8 truncation; it draws its own offsets
            cpu_kernel("glass_shuffle")(y.permute(0, 2, 3, 1).numpy(), rng.keys("glass_blur"), iterations, delta)
        else:
            y = torch.floor(y * 255) / 255
        rows = as_rows(gaussian_filter(y, sigma, "edge").permute(0, 2, 3, 1))
        return torch.from_numpy(cpu_kernel("to_u8")(rows, 1, np.empty(rows.shape, np.uint8)).reshape(x.shape))
    y = torch.floor(gaussian_filter(nchw01(x), sigma, "edge") * 255)  # np.uint8(... * 255) truncates
    if nh and nw:
        offs = rng.randint("glass_blur", -delta, delta, iterations, nh, nw, 2)
        for i in range(iterations):
            y = local_shuffle(y, offs[:, i], delta)
    return nhwc255(gaussian_filter(y / 255.0, sigma, "edge"))


@register_corruption("motion_blur")
def motion_blur(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    radius, sigma = c
    angles = np.array([r.uniform(-45, 45) for r in rng.legacy()])  # the reference's first draw
    if use_compiled(x):
        rows = as_rows(motion_blur_nhwc(x, angles, radius, sigma))
        return torch.from_numpy(cpu_kernel("to_u8")(rows, 255, np.empty(rows.shape, np.uint8)).reshape(x.shape))
    y = _motion_blur(x.permute(0, 3, 1, 2), angles, radius, sigma)
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
    if use_compiled(x):
        return _zoom_blur_cpu(x, factors, opt["zoom_crop"])
    y = x.permute(0, 3, 1, 2).float().div_(255.0)  # channels-last memory: the fast bilinear kernel
    h, w = y.shape[-2:]
    out = y.clone()
    for z in factors:
        out += crop_zoomed(clipped_zoom(y, float(z)), h, w, opt["zoom_crop"])
    return nhwc255(out.div_(len(factors) + 1))


def _zoom_blur_cpu(x: torch.Tensor, factors: np.ndarray, crop: str) -> torch.Tensor:
    """zoom_blur on CPU: one compiled pass per image over all zoom factors (separable bilinear taps)."""
    arr = np.ascontiguousarray(x.numpy())
    plan = _zoom_plan(*arr.shape[1:], tuple(float(z) for z in factors), crop)
    return torch.from_numpy(cpu_kernel("zoom_blur")(arr, *plan, np.empty_like(arr)))


@functools.lru_cache(maxsize=16)
def _zoom_plan(h: int, w: int, nc: int, factors: tuple, crop: str) -> tuple:
    """The zoom_blur kernel's tables: per zoom, the row taps (r0, r1, wy), and the column taps as runs
    of output pixels j that read the source at the same offsets (c0[j] - j, c1[j] - j): (starts,
    da, db, runs) in units of values (W·C per row, padded to the most runs), weights (wa, wb) per value."""
    r0, r1, wy = (np.stack(t) for t in zip(*(zoom_tables(h, z, crop) for z in factors)))
    runs = []
    for z in factors:
        c0, c1, wx = zoom_tables(w, z, crop)
        da, db = c0 - np.arange(w), c1 - np.arange(w)
        cut = np.flatnonzero((np.diff(da) != 0) | (np.diff(db) != 0)) + 1
        starts = np.concatenate([[0], cut, [w]])
        runs.append((starts * nc, da[starts[:-1]] * nc, db[starts[:-1]] * nc, np.repeat(wx, nc)))
    m = max(len(d) for _, d, _, _ in runs)
    starts, da, db = np.zeros((len(runs), m + 1), np.int64), np.zeros((len(runs), m), np.int64), np.zeros((len(runs), m), np.int64)
    for z, (s, a, b, _) in enumerate(runs):
        starts[z, :len(s)], da[z, :len(a)], db[z, :len(b)] = s, a, b
    wb = np.stack([t for *_, t in runs])
    return r0, r1, wy, starts, da, db, np.array([len(d) for _, d, _, _ in runs]), np.float32(1) - wb, wb
