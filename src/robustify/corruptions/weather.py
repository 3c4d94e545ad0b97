"""Weather corruptions: snow, frost (the reference package's frost pictures), fog, brightness."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .blur import crop_zoomed, nchw01, nhwc255
from .ops import ImageRng, as_rows, clipped_zoom, cpu_kernel, motion_blur, next_power_of_2, plasma_fractal, use_compiled
from .registry import register_corruption

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


@register_corruption("snow")
def snow(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, blend = c
    b, h, w, _ = x.shape
    layer, angles = np.empty((b, 1, h, w), np.float32), np.empty(b)
    # the reference's own draws, in its order: snow field, then blur angle
    cpu_kernel("legacy_normal32")(rng.legacy_seeds(), float(loc), float(scale), layer.reshape(b, -1), angles)
    layer = torch.as_tensor(layer, device=x.device)
    layer = clipped_zoom(layer, float(zoom))
    if opt["zoom_crop"] == "center":  # make_cifar_c.py trims before blurring, through a uint8 PNG
        layer = crop_zoomed(layer, h, w, "center")
    layer = layer.masked_fill_(layer < threshold, 0).clamp_(0, 1)
    if opt["zoom_crop"] == "center":
        layer = torch.floor(layer * 255) / 255
    layer = motion_blur(layer, angles, radius, sigma)  # on the whole zoomed layer, as the reference
    if use_compiled(x):
        arr = np.ascontiguousarray(x.numpy())
        return torch.from_numpy(cpu_kernel("snow_blend")(arr, layer[:, 0].numpy(), float(blend), np.empty_like(arr)))
    y = nchw01(x)
    layer = torch.round(layer * 255) / 255
    layer = layer[..., :h, :w]
    gray = 0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]
    y = blend * y + (1 - blend) * torch.maximum(y, gray * 1.5 + 0.5)
    return nhwc255(y + layer + torch.flip(layer, dims=(-2, -1)))


@functools.lru_cache(maxsize=None)
def _frost_pictures() -> tuple[np.ndarray, ...]:
    """The frost pictures shipped inside the installed reference package (BGR, as cv2 reads them)."""
    import importlib.resources

    import cv2

    out = []
    for name in FROST_FILES:
        ref = importlib.resources.files("imagecorruptions") / "frost" / name
        with importlib.resources.as_file(ref) as path:
            img = cv2.imread(str(path))
        if img is None:
            raise FileNotFoundError(f"frost picture {name} missing from the imagecorruptions package")
        out.append(img)
    return tuple(out)


def _fit_scale(fshape, h, w) -> float:
    """The reference's frost scaling: ×1.1 of the factor that makes the picture cover the image."""
    s = 1.0
    if fshape[0] < h and fshape[1] >= w:
        s = h / fshape[0]
    elif fshape[0] >= h and fshape[1] < w:
        s = w / fshape[1]
    elif fshape[0] < h and fshape[1] < w:
        s = max(h / fshape[0], w / fshape[1])
    return s * 1.1


@functools.lru_cache(maxsize=8)
def frost_textures(h: int, w: int, shrink, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, Hmax, Wmax, 3) RGB float textures prepared for h×w images and their (n, 2) sizes."""
    import cv2

    texs = []
    for f in _frost_pictures()[:n]:
        if shrink is not None:  # make_cifar_c.py: cv2.resize(frost, (0, 0), fx=0.2, fy=0.2) at 32 px
            s = shrink * max(h, w) / 32
            f = cv2.resize(f, (0, 0), fx=s, fy=s)
        if shrink is None or f.shape[0] <= h or f.shape[1] <= w:
            s = _fit_scale(f.shape, h, w)
            f = cv2.resize(f, dsize=(int(np.ceil(f.shape[1] * s)), int(np.ceil(f.shape[0] * s))), interpolation=cv2.INTER_CUBIC)
        texs.append(f[..., ::-1])  # BGR -> RGB
    hm, wm = max(t.shape[0] for t in texs), max(t.shape[1] for t in texs)
    stack = np.zeros((n, hm, wm, 3), dtype=np.float32)
    for i, t in enumerate(texs):
        stack[i, : t.shape[0], : t.shape[1]] = t
    sizes = np.array([t.shape[:2] for t in texs], dtype=np.int64)
    return torch.as_tensor(stack, device=device), torch.as_tensor(sizes, device=device)


@register_corruption("frost")
def frost(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    b, h, w, _ = x.shape
    n = opt["frost_textures"]
    tex, sizes = frost_textures(h, w, opt["frost_shrink"], n, str(x.device))
    room = (sizes.cpu().numpy() - np.array([h, w])).clip(min=1)
    draws = []
    for r in rng.legacy():  # the reference's own draws: picture, then crop row, then crop column
        i = r.randint(n)
        draws.append((i, r.randint(0, room[i, 0]), r.randint(0, room[i, 1])))
    if use_compiled(x):
        out = cpu_kernel("frost")(np.ascontiguousarray(x.numpy()), tex.numpy(), np.array(draws, dtype=np.int64),
                                float(c[0]), float(c[1]), np.empty(tuple(x.shape), np.uint8))
        return torch.from_numpy(out)
    draws = torch.as_tensor(np.array(draws, dtype=np.int64), device=x.device)
    idx, start = draws[:, 0], draws[:, 1:]
    rows = (start[:, 0:1] + torch.arange(h, device=x.device))[:, :, None]
    cols = (start[:, 1:2] + torch.arange(w, device=x.device))[:, None, :]
    crop = tex[idx[:, None, None], rows, cols]
    return (c[0] * x.double() + c[1] * crop.double()).clamp_(0, 255)


@register_corruption("fog")
def fog(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    weight, decay = c
    b, h, w, _ = x.shape
    size = next_power_of_2(int(max(h, w, 3)))
    if use_compiled(x):
        arr = np.ascontiguousarray(x.numpy())
        return torch.from_numpy(cpu_kernel("fog")(arr, rng.legacy_seeds(), size, float(weight), float(decay), np.empty_like(arr)))
    y = x.float() / 255.0
    plasma = plasma_fractal(rng, size, decay)[:, :h, :w, None]
    max_val = y.amax(dim=(1, 2, 3), keepdim=True)
    y = y + weight * plasma
    return (y * max_val / (max_val + weight)).clamp_(0, 1) * 255


@register_corruption("brightness")
def brightness(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    """HSV value + c: with hue and saturation fixed that is a per-pixel rescale of RGB by V'/V."""
    if use_compiled(x):
        rows = as_rows(x)
        return torch.from_numpy(cpu_kernel("brightness")(rows, float(c), np.empty_like(rows)).reshape(x.shape))
    y = x.double() / 255.0
    v = y.amax(dim=-1, keepdim=True)
    v2 = (v + c).clamp_(max=1.0)
    out = torch.where(v > 0, y * (v2 / v.clamp(min=1e-12)), v2.expand_as(y))
    return out.clamp_(0, 1) * 255
