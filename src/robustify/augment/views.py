"""Augmented views per scheme: one view of one image from its own random stream.

Scheme → view of image x (d = its DeepAugment image from the pool, or made on the fly):
  augmix              AugMix(x)
  deepaugment         d
  pixmix              PixMix(x) mixing with fractals, single AugMix-family ops as `augment`
  augmix_deepaugment  AugMix(s), s = d or x with p=0.5 (the original trains AugMix on ImageNet ∪ DeepAugment)
  pixmix_augmix       PixMix(x) with a full AugMix chain as `augment`
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .names import check_scheme
from .seeding import TAG, image_rng


@dataclass(frozen=True)
class AugmentSettings:
    """Knobs of every scheme (mirrors params `teachers.augmix/pixmix/deepaugment`)."""

    augmix_severity: int = 3
    augmix_width: int = 3
    augmix_depth: int = -1
    augmix_alpha: float = 1.0
    augmix_all_ops: bool = False
    pixmix_k: int = 4
    pixmix_beta: float = 3.0
    pixmix_severity: int = 3
    fractals: int = 1000
    fractal_seed: int = 0
    deepaugment_p: float = 0.5  # augmix_deepaugment: probability that the source is the DeepAugment image
    deepaugment_channels: int = 32
    deepaugment_edsr_blocks: int = 4
    deepaugment_strength: tuple = (0.04, 0.2)
    deepaugment_net_seed: int = 0
    deepaugment_weights: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_config(cls, cfg) -> "AugmentSettings":
        """From a `config.TeachersConfig`."""
        a, p, d = cfg.augmix, cfg.pixmix, cfg.deepaugment
        return cls(a.severity, a.width, a.depth, a.alpha, a.all_ops, p.k, p.beta, p.severity, p.fractals, p.fractal_seed,
                   d.p_source, d.channels, d.edsr_blocks, (d.strength_min, d.strength_max), d.net_seed,
                   {"cae": d.cae_weights, "edsr": d.edsr_weights})


class ViewMaker:
    """Makes views of single images: `view(image, scheme, seed, key, *tags, pool_image=None)`."""

    def __init__(self, settings: Optional[AugmentSettings] = None):
        self.s = settings or AugmentSettings()
        self._nets = None

    # --- building blocks -------------------------------------------------------------------
    def augmix(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from .augmix import augmix_image

        s = self.s
        return augmix_image(image, rng, s.augmix_severity, s.augmix_width, s.augmix_depth, s.augmix_alpha, s.augmix_all_ops)

    def single_op(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from .augmix import augment_op_image

        return augment_op_image(image, rng, self.s.pixmix_severity, self.s.augmix_all_ops)

    def pixmix(self, image: np.ndarray, rng: np.random.Generator, with_augmix: bool) -> np.ndarray:
        from .fractals import fractal_pictures
        from .pixmix import pixmix_image

        pics = fractal_pictures(self.s.fractals, image.shape[0], self.s.fractal_seed)
        return pixmix_image(image, pics, rng, self.augmix if with_augmix else self.single_op, self.s.pixmix_k, self.s.pixmix_beta)

    def deepaugment(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from .deepaugment import build_networks, deepaugment_image

        if self._nets is None:
            s = self.s
            self._nets = build_networks(s.deepaugment_net_seed, s.deepaugment_channels, s.deepaugment_edsr_blocks, s.deepaugment_weights)
        return deepaugment_image(image, rng, self._nets, strength=self.s.deepaugment_strength)

    # --- schemes -----------------------------------------------------------------------------
    def source(self, image: np.ndarray, scheme: str, rng: np.random.Generator, pool_image: Optional[np.ndarray]) -> np.ndarray:
        """The image a view starts from: the DeepAugment image (always for deepaugment, p for the combination) or x."""
        if scheme == "deepaugment" or (scheme == "augmix_deepaugment" and rng.random() < self.s.deepaugment_p):
            return pool_image if pool_image is not None else self.deepaugment(image, rng)
        return image

    def view(self, image: np.ndarray, scheme: str, rng: np.random.Generator, pool_image: Optional[np.ndarray] = None,
             source: Optional[np.ndarray] = None) -> np.ndarray:
        """One view; `source` skips the DeepAugment draw (training triples share one source)."""
        if source is None:
            source = self.source(image, scheme, rng, pool_image)
        if scheme == "augmix" or scheme == "augmix_deepaugment":
            return self.augmix(source, rng)
        if scheme == "deepaugment":
            return source
        if scheme == "pixmix":
            return self.pixmix(image, rng, with_augmix=False)
        if scheme == "pixmix_augmix":
            return self.pixmix(image, rng, with_augmix=True)
        check_scheme(scheme)
        raise AssertionError(scheme)


def make_views(images: np.ndarray, scheme: str, seed: int, deepaugment_pool: Optional[np.ndarray] = None,
               settings: Optional[AugmentSettings] = None) -> np.ndarray:
    """One augmented view per image (uint8 NHWC in and out), for pre-generating view sets.

    Deterministic given `seed` and independent of batching: image i's view depends only on `seed`,
    its pixels and (when given) `deepaugment_pool[i]`, its pre-generated DeepAugment image. Without
    a pool, DeepAugment images are made on the fly (~3 ms per image). No crop/flip is applied.
    """
    from ..errors import DataError
    from .seeding import content_keys

    check_scheme(scheme)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"make_views needs uint8 N×H×W×3 images, got {images.dtype} {images.shape}")
    if deepaugment_pool is not None and deepaugment_pool.shape != images.shape:
        raise DataError(f"deepaugment_pool has shape {deepaugment_pool.shape} but images {images.shape}; "
                        "pass the pool generated for these images")
    maker = ViewMaker(settings)
    out = np.empty_like(images)
    for i, key in enumerate(content_keys(images)):
        rng = image_rng(seed, key, TAG["choice"])
        out[i] = maker.view(images[i], scheme, rng, None if deepaugment_pool is None else deepaugment_pool[i])
    return out
