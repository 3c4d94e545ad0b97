"""Datasets as uint8 NHWC arrays + int64 labels; shift suites and class mappings live with the data.

CIFAR-10 train is split into train/val by holding out the last `val_per_class` images of each class,
so knob studies never touch test data.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import DataError
from .mirror import resolve

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PACS_CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
PACS_DOMAINS = ("photo", "art_painting", "cartoon", "sketch")


@dataclass
class ArrayDataset:
    """Images `x` (N,H,W,3 uint8) and labels `y` (N, int64) in the label space of `classes`."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple = CIFAR10_CLASSES
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_arrays(self.x, self.y, len(self.classes), self.name)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray, name: Optional[str] = None) -> "ArrayDataset":
        return ArrayDataset(name or self.name, self.x[idx], self.y[idx], self.classes, dict(self.meta))

    def head(self, n: Optional[int]) -> "ArrayDataset":
        """The first `n` images of each class, in original order (n=None: all)."""
        if n is None:
            return self
        keep = np.sort(np.concatenate([np.flatnonzero(self.y == c)[:n] for c in np.unique(self.y)]))
        return self.subset(keep)


def check_arrays(x: np.ndarray, y: np.ndarray, num_classes: int, name: str) -> None:
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise DataError(f"{name}: images must be uint8 N×H×W×3, got {x.dtype} {x.shape}; convert the file")
    if len(x) == 0:
        raise DataError(f"{name}: the dataset is empty; check the file or the subset settings")
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} images but {len(y)} labels; the file is inconsistent")
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(f"{name}: label {int(y.max()) if y.max() >= num_classes else int(y.min())} outside 0..{num_classes - 1}; fix the labels or the class mapping")


def load_npz(path: str | Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    path = Path(path)
    from ..io import verify_sha256

    verify_sha256(path)  # issue 11: generated datasets (save_npz) carry their sha256
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f"{path}: arrays {missing} are missing (has {f.files}); use a file made for this dataset")
            return {k: f[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read the .npz ({type(e).__name__}: {str(e)[:80]}); the file is truncated or corrupt, fetch it again") from None


def cifar10(split: str, val_per_class: int = 100) -> ArrayDataset:
    """split: train (minus val), val (last `val_per_class` train images per class), train_full, test."""
    if split not in ("train", "val", "train_full", "test"):
        raise DataError(f"unknown CIFAR-10 split '{split}'; use train, val, train_full or test")
    key = "test" if split == "test" else "train"
    a = load_npz(resolve("cifar10.npz"), [f"x_{key}", f"y_{key}"])
    ds = ArrayDataset(f"cifar10_{split}", a[f"x_{key}"], a[f"y_{key}"])
    if split in ("train", "val") and val_per_class:
        val = np.zeros(len(ds), dtype=bool)
        for c in range(10):
            idx = np.flatnonzero(ds.y == c)
            val[idx[len(idx) - val_per_class:]] = True
        ds = ds.subset(np.flatnonzero(val if split == "val" else ~val), f"cifar10_{split}")
    return ds


def pacs(domain: str, classes: Optional[Sequence[str]] = None, label_space: Sequence[str] = PACS_CLASSES) -> ArrayDataset:
    """PACS images of `domain`, restricted to `classes`, labelled by their index in `label_space`.

    The CIFAR-10 analogue of ImageNet-R/Sketch/ObjectNet uses classes (dog, horse) scored 10-way:
    `pacs("sketch", ["dog", "horse"], CIFAR10_CLASSES)`.
    """
    if domain not in PACS_DOMAINS:
        raise DataError(f"unknown PACS domain '{domain}'; use one of {', '.join(PACS_DOMAINS)}")
    classes = tuple(classes or PACS_CLASSES)
    unknown = [c for c in classes if c not in PACS_CLASSES or c not in label_space]
    if unknown:
        raise DataError(f"PACS classes {unknown} are not in PACS or in the target label space; pick from {PACS_CLASSES}")
    a = load_npz(resolve("pacs_64.npz"), [f"x_{domain}", f"y_{domain}"])
    x, y = a[f"x_{domain}"], a[f"y_{domain}"]
    keep = np.isin(y, [PACS_CLASSES.index(c) for c in classes])
    remap = np.array([label_space.index(c) if c in classes else -1 for c in PACS_CLASSES])
    return ArrayDataset(f"pacs_{domain}", x[keep], remap[y[keep]].astype(np.int64), tuple(label_space))


def pacs_split(domain: str, test_fraction: float, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """Stratified train/test split of a PACS-7 domain (the transfer-learning probe)."""
    ds = pacs(domain)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(ds), dtype=bool)
    for c in np.unique(ds.y):
        idx = rng.permutation(np.flatnonzero(ds.y == c))
        test[idx[: max(1, round(len(idx) * test_fraction))]] = True
    return ds.subset(np.flatnonzero(~test), f"pacs_{domain}_train"), ds.subset(np.flatnonzero(test), f"pacs_{domain}_test")


def imagenet_samples() -> ArrayDataset:
    """One ImageNet val-style image per class (1000), labels = ImageNet-1k index; for retention."""
    a = load_npz(resolve("imagenet_samples_96.npz"), ["x", "y", "wnid"])
    return ArrayDataset("imagenet_samples", a["x"], a["y"], tuple(a["wnid"].tolist()))


def user_npz(path: str | Path, classes: Sequence[str] = CIFAR10_CLASSES) -> ArrayDataset:
    """A user's own shift: an .npz with `x` (N,H,W,3 uint8) and `y` (N,) in the label space `classes`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such dataset file; pass an .npz with arrays x and y")
    a = load_npz(path, ["x", "y"])
    return ArrayDataset(path.stem, a["x"], a["y"].astype(np.int64), tuple(classes))


def image_folder(root: str | Path, size: int, class_to_idx: Optional[dict[str, int]] = None,
                 classes: Sequence[str] = CIFAR10_CLASSES, border: int = 0) -> ArrayDataset:
    """An ImageFolder tree (root/<class>/*.jpg) loaded at `size` px (short side + centre crop).

    `border` crops that many pixels first (ObjectNet's 1-px frame). `class_to_idx` maps folder names
    to label indices (default: the folder name's index in `classes`); unmapped folders are skipped.
    """
    from PIL import Image

    from .build import _square

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder; pass a directory of class sub-folders")
    mapping = class_to_idx or {c: i for i, c in enumerate(classes)}
    xs, ys = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name in mapping):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
                continue
            img = Image.open(f)
            if border:
                img = img.crop((border, border, img.width - border, img.height - border))
            xs.append(_square(img, size))
            ys.append(mapping[folder.name])
    if not xs:
        raise DataError(f"{root}: no images in folders named after the classes; expected root/<class>/*.jpg")
    return ArrayDataset(root.name, np.stack(xs), np.asarray(ys, dtype=np.int64), tuple(classes))
