"""Digital corruptions: contrast, elastic transform, pixelate, JPEG compression."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .blur import nchw01, nhwc255
from .ops import ImageRng, as_rows, bilinear_sample, cpu_kernel, gaussian_filter, thread_map, unit32, use_compiled
from .registry import register_corruption


@register_corruption("contrast")
def contrast(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    if use_compiled(x):
        rows = as_rows(x)
        return torch.from_numpy(cpu_kernel("contrast")(rows, float(c), np.empty_like(rows)).reshape(x.shape))
    y = x.float().div_(255.0)
    means = y.mean(dim=(1, 2), keepdim=True, dtype=torch.float64).float()
    return y.sub_(means).mul_(c).add_(means).clamp_(0, 1).mul_(255)


@register_corruption("elastic_transform")
def elastic_transform(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    b, h, w, _ = x.shape
    dev = x.device
    # the reference's own draws (numpy's legacy stream for the image seed), in its order:
    # [affine jitter (cifar)], uniform field for dx, uniform field for dy
    affine = opt["elastic"] == "affine"
    scale = h / 32.0
    if affine:  # make_cifar_c.py: random affine, then the displacement field
        alpha, sigma, jitter, lim = c[0] * scale, c[1] * scale, c[2] * scale, 1.0
    else:  # the reference package: sigma 1% of each side, uniform ±0.5% of the height
        alpha, sigma, jitter, lim = c, (h * 0.01, w * 0.01), 0.0, h * 0.005
    draw = cpu_kernel("legacy_uniform32")  # random_sample(n) · 2a - a, compiled
    seeds = rng.legacy_seeds()
    jit = draw(seeds, 0, 2 * jitter, jitter, np.empty((b, 6), np.float32)).reshape(b, 3, 2) if affine else None
    fields = draw(seeds, 6 if affine else 0, 2 * lim, lim, np.empty((b, 2 * h * w), np.float32)).reshape(b, 2, h, w)
    y = _random_affine(nchw01(x), jit) if affine else None
    fields = gaussian_filter(torch.as_tensor(fields, device=dev), sigma, "symmetric", truncate=3.0)  # dx, dy
    if use_compiled(x):  # map_coordinates compiled, straight to uint8 (the gain alpha in it)
        img = y.permute(0, 2, 3, 1).contiguous().numpy() if affine else unit32(x)
        return torch.from_numpy(cpu_kernel("displace")(img, fields.numpy(), float(alpha), np.empty(tuple(x.shape), np.uint8)))
    gy, gx = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                            torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    fields = fields * alpha
    return nhwc255(bilinear_sample(nchw01(x) if y is None else y, gy + fields[:, 1], gx + fields[:, 0], "symmetric"))


def _random_affine(y: torch.Tensor, jit: np.ndarray) -> torch.Tensor:
    """cv2.warpAffine(img, getAffineTransform(pts1, pts1 + U(±jitter)), BORDER_REFLECT_101), batched."""
    import cv2

    b, _, h, w = y.shape
    centre = np.float32([h, w]) // 2
    sq = min(h, w) // 3
    pts1 = np.float32([centre + sq, [centre[0] + sq, centre[1] - sq], centre - sq])
    inv = np.stack([cv2.invertAffineTransform(cv2.getAffineTransform(pts1, pts1 + j)) for j in jit])
    inv = torch.as_tensor(inv, dtype=torch.float32, device=y.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=y.device, dtype=torch.float32),
                            torch.arange(w, device=y.device, dtype=torch.float32), indexing="ij")
    sx = inv[:, 0, 0, None, None] * gx + inv[:, 0, 1, None, None] * gy + inv[:, 0, 2, None, None]
    sy = inv[:, 1, 0, None, None] * gx + inv[:, 1, 1, None, None] * gy + inv[:, 1, 2, None, None]
    return bilinear_sample(y, sy, sx, "reflect101")


def _per_image(fn, x: torch.Tensor) -> torch.Tensor:
    """Run a PIL function on each image in threads (PIL releases the GIL)."""
    return torch.as_tensor(np.stack(thread_map(fn, x.cpu().numpy())), device=x.device)


@register_corruption("pixelate")
def pixelate(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    from PIL import Image

    up = Image.NEAREST if opt["pixelate_up"] == "nearest" else Image.BOX
    h, w = x.shape[1:3]

    def one(a):
        im = Image.fromarray(a).resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX)
        return np.asarray(im.resize((w, h), up))

    return _per_image(one, x)


@register_corruption("jpeg_compression")
def jpeg_compression(x: torch.Tensor, c, rng: ImageRng, opt: dict) -> torch.Tensor:
    """PIL's save(quality=c) + reopen, through OpenCV's codec per image: both are libjpeg-turbo with its
    defaults (4:2:0, integer DCT, fancy upsampling), and give the same pixels (checked: ImageNet and
    CIFAR images at every table quality) in 70% of PIL's time at 224 px (PIL repacks RGB to 4-byte
    pixels and back) and faster than torchvision's batched codec at 32 px."""
    return _per_image(functools.partial(_cv2_jpeg, quality=int(c)), x)


def _cv2_jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    _, buf = cv2.imencode(".jpg", cv2.cvtColor(a, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
