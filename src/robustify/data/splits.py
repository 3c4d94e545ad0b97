"""The CIFAR-10 train/val/test splits as params define them (validation held out, smoke caps)."""

from __future__ import annotations

from .datasets import ArrayDataset, cifar10


def split(data_cfg, name: str) -> ArrayDataset:
    """`name` in train/val/test; applies data.val_per_class and the train/test per-class caps."""
    ds = cifar10(name, data_cfg.val_per_class)
    cap = {"train": data_cfg.train_per_class, "test": data_cfg.test_per_class}.get(name)
    return ds.head(cap) if cap else ds
