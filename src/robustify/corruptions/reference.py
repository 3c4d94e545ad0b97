"""engine="reference": the imagecorruptions-imaug package, one image at a time, seeded per image.

Most of its corruptions draw from numpy's global RNG (seeded here before each image); impulse_noise
and glass_blur ignore it and take their own `seed=` argument, which we pass.
"""

from __future__ import annotations

import functools

import numpy as np

OWN_SEED = ("impulse_noise", "glass_blur")


@functools.lru_cache(maxsize=None)
def reference_names() -> tuple[str, ...]:
    from imagecorruptions import get_corruption_names

    return tuple(get_corruption_names("all"))


def reference_corrupt(images: np.ndarray, name: str, severity: int, seeds: np.ndarray) -> np.ndarray:
    import warnings

    from imagecorruptions import corrupt as ref_corrupt

    out = np.empty_like(images)
    state = np.random.get_state()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, (img, seed) in enumerate(zip(images, seeds)):
                s = int(seed) % (1 << 32)
                np.random.seed(s)
                kw = {"seed": s} if name in OWN_SEED else {}
                out[i] = ref_corrupt(np.ascontiguousarray(img), severity=severity, corruption_name=name, **kw)
    finally:
        np.random.set_state(state)
    return out
