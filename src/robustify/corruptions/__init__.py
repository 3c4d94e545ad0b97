"""Batched ImageNet-C corruptions (15 × severities 1–5) in torch, validated against imagecorruptions.
CPU tensors take compiled fast paths (numba kernels in `_cpu_kernels`, OpenCV) with the same semantics.

    from robustify.corruptions import CORRUPTIONS, corrupt, image_seeds
    seeds = image_seeds(0, np.arange(len(x)), "fog", 3)
    x_c = corrupt(x, "fog", 3, seeds, table="cifar")          # uint8 NHWC in, uint8 NHWC out

Add a corruption with `@register_corruption("name")` and its constants in `tables.py`. Importing
this package does not import torch; the implementations load on first use.
"""

from .engine import corrupt, image_seeds
from .names import CORRUPTIONS, ENGINES, SEVERITIES, TABLES
from .registry import get_corruption, register_corruption, registered
from .tables import CIFAR, IMAGENET, OPTIONS, TABLE_CONSTANTS

__all__ = [
    "CORRUPTIONS", "SEVERITIES", "TABLES", "ENGINES", "corrupt", "image_seeds",
    "register_corruption", "registered", "get_corruption", "IMAGENET", "CIFAR", "OPTIONS", "TABLE_CONSTANTS",
]
