"""Data layer: verified raw files (mirror or download), datasets, shift suites."""

from .datasets import ArrayDataset, cifar10, imagenet_samples, pacs, pacs_split, user_npz  # noqa: F401
from .mirror import resolve  # noqa: F401
