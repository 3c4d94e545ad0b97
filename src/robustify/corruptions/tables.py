"""Severity tables: the constants each corruption applies at severities 1..5.

`imagenet`: exactly the constants of the reference package imagecorruptions-imaug 1.1.5
(`imagecorruptions/corruptions.py`), which applies them at any image size.

`cifar`: the CIFAR-10-C constants of Hendrycks' `ImageNet-C/create_c/make_cifar_c.py`
(github.com/hendrycks/robustness, commit ca360085d57889288c4143fddd8a707bbcae01bd). That script
only knows 32-px images; at other sizes we scale its pixel-valued constants (elastic, frost texture
shrink) by `side / 32` and keep the rest. Its Wand (ImageMagick) motion blur is replaced by the
reference package's port of the same kernel.

Each entry is a tuple of 5 parameter values (severity 1..5). `OPTIONS` holds the algorithmic
differences between the two scripts, so one implementation serves both tables.
"""

from __future__ import annotations

IMAGENET: dict[str, tuple] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    # (disk radius, alias blur sigma)
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    # (sigma, max_delta, iterations)
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    # (radius, sigma)
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    # np.arange(start, stop, step) of zoom factors
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
    # (loc, scale, zoom, threshold, blur radius, blur sigma, blend)
    "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8),
             (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
             (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
             (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
             (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    # (image weight, frost weight)
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    # (fog weight, wibble decay)
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    # alpha (displacement gain); sigma = 1% of each side, max displacement = 0.5% of the height
    "elastic_transform": (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
}

_S = 32  # make_cifar_c.py's IMSIZE
CIFAR: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95),
             (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # (alpha, sigma, affine jitter), all in px at 32 px: IMSIZE * (...)
    "elastic_transform": ((_S * 0, _S * 0, _S * 0.08),
                          (_S * 0.05, _S * 0.2, _S * 0.07),
                          (_S * 0.08, _S * 0.06, _S * 0.06),
                          (_S * 0.1, _S * 0.04, _S * 0.05),
                          (_S * 0.1, _S * 0.03, _S * 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}

# Algorithmic differences between the reference package (imagenet) and make_cifar_c.py (cifar).
OPTIONS: dict[str, dict] = {
    "imagenet": {
        "zoom_crop": "top_left",     # clipped_zoom keeps [:H, :W] of the zoomed crop
        "frost_textures": 6,         # np.random.randint(6)
        "frost_shrink": None,        # texture rescaled by 1.1 × (fit to image)
        "pixelate_up": "nearest",
        "elastic": "imaug",          # displacement field only
    },
    "cifar": {
        "zoom_crop": "center",       # clipped_zoom trims the centre
        "frost_textures": 5,         # np.random.randint(5): frost6 never used
        "frost_shrink": 0.2,         # cv2.resize(frost, fx=0.2, fy=0.2) at 32 px
        "pixelate_up": "box",
        "elastic": "affine",         # random affine, then displacement field
    },
}

TABLE_CONSTANTS: dict[str, dict[str, tuple]] = {"imagenet": IMAGENET, "cifar": CIFAR}


def params(table: str, name: str, severity: int):
    """The constants of `name` at `severity` (1..5) in `table`."""
    return TABLE_CONSTANTS[table][name][severity - 1]
