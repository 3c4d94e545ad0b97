"""Training views for teacher robustification, fresh every epoch and reproducible from (seed, epoch, index).

Each item is crop(pad 4)/flip, then the scheme:
  JSD schemes (augmix, augmix_deepaugment, pixmix_augmix): [source, view 1, view 2] for CE + λ·JSD
  deepaugment: [x, d] — CE on both (the original trains on the union of clean and DeepAugment images)
  pixmix: [view] — CE on the PixMix view only (as the authors' CIFAR code)
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .names import JSD_SCHEMES, check_scheme
from .seeding import TAG, image_rng
from .views import AugmentSettings, ViewMaker


def crop_flip(image: np.ndarray, rng: np.random.Generator, pad: int = 4, *others: np.ndarray) -> list[np.ndarray]:
    """Random crop from the zero-padded image and horizontal flip, the same for `image` and `others`."""
    h, w = image.shape[:2]
    i, j = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
    flip = rng.random() < 0.5
    out = []
    for im in (image, *others):
        p = np.pad(im, ((pad, pad), (pad, pad), (0, 0)))[i:i + h, j:j + w]
        out.append(np.ascontiguousarray(p[:, ::-1] if flip else p))
    return out


def views_per_item(scheme: str) -> int:
    check_scheme(scheme)
    return 3 if scheme in JSD_SCHEMES else 2 if scheme == "deepaugment" else 1


class TripletViews:
    """Views of (x, y) for one scheme; `batch(indices, epoch)` → (views uint8 V×B×H×W×3, labels B)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, scheme: str, seed: int, settings: Optional[AugmentSettings] = None,
                 deepaugment_pool: Optional[np.ndarray] = None, crop_flip: bool = True):
        self.x, self.y, self.scheme, self.seed = x, y, check_scheme(scheme), int(seed)
        self.pool = deepaugment_pool
        self.crop_flip = crop_flip
        self.maker = ViewMaker(settings)
        self.n_views = views_per_item(scheme)

    def __len__(self) -> int:
        return len(self.y)

    def item(self, index: int, epoch: int) -> list[np.ndarray]:
        x = self.x[index]
        d = None if self.pool is None else self.pool[index]
        if self.crop_flip:
            rng = image_rng(self.seed, index, TAG["cropflip"], epoch)
            x, *rest = crop_flip(x, rng, 4, *([] if d is None else [d]))
            d = rest[0] if rest else None
        rng = image_rng(self.seed, index, TAG["choice"], epoch)
        s = self.scheme
        if s == "pixmix":
            return [self.maker.view(x, s, rng)]
        source = self.maker.source(x, s, rng, d)
        if s == "deepaugment":
            return [x, source]
        return [source, self.maker.view(x, s, rng, source=source), self.maker.view(x, s, rng, source=source)]

    def batch(self, indices: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        items = [self.item(int(i), epoch) for i in indices]
        views = np.stack([np.stack([it[v] for it in items]) for v in range(self.n_views)])
        return views, self.y[indices]
