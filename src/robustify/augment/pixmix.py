"""PixMix (Hendrycks et al., 2022): mix an image with fractal pictures and augmented copies of itself.

Follows the authors' CIFAR code: start from the image or an augmented copy (p=0.5), then 0..k times
mix in either an augmented copy or the mixing picture (p=0.5) by a random additive or multiplicative
mix with Beta(β)-drawn weights. `augment` is one AugMix-family operation (severity 3) for plain PixMix;
for `pixmix_augmix` it is a full AugMix chain. The mixing picture is a random crop-and-flip of a
fractal from `fractals.fractal_pictures`, drawn per image from the image's own stream.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _ab(rng: np.random.Generator, beta: float) -> tuple[float, float]:
    if rng.random() < 0.5:
        return float(rng.beta(beta, 1)), float(rng.beta(1, beta))
    return 1 + float(rng.beta(1, beta)), -float(rng.beta(1, beta))


def _add(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, beta: float) -> np.ndarray:
    a, b = _ab(rng, beta)
    return (a * (x * 2 - 1) + b * (y * 2 - 1) + 1) / 2


def _multiply(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, beta: float) -> np.ndarray:
    a, b = _ab(rng, beta)
    return ((x * 2) ** a) * (np.clip(y * 2, 1e-37, None) ** b) / 2


def mixing_picture(pictures: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random picture, randomly cropped (≥ half its side), resized to `size` and flipped."""
    pic = pictures[int(rng.integers(len(pictures)))]
    h = pic.shape[0]
    side = int(rng.integers(h // 2, h + 1))
    i, j = (int(rng.integers(0, h - side + 1)) for _ in range(2))
    crop = pic[i:i + side, j:j + side]
    if side != size:
        idx = (np.arange(size) * side / size).astype(int)
        crop = crop[idx][:, idx]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def pixmix_image(image: np.ndarray, pictures: np.ndarray, rng: np.random.Generator,
                 augment: Callable[[np.ndarray, np.random.Generator], np.ndarray], k: int = 4, beta: float = 3.0) -> np.ndarray:
    """One PixMix view of a uint8 HWC image (uint8 HWC out)."""
    mixing = mixing_picture(pictures, rng, image.shape[0]).astype(np.float32) / 255
    src = augment(image, rng) if rng.random() < 0.5 else image
    mixed = src.astype(np.float32) / 255
    for _ in range(int(rng.integers(k + 1))):
        other = augment(image, rng).astype(np.float32) / 255 if rng.random() < 0.5 else mixing
        op = _add if rng.random() < 0.5 else _multiply
        mixed = np.clip(op(mixed, other, rng, beta), 0, 1)
    return (mixed * 255).round().astype(np.uint8)
