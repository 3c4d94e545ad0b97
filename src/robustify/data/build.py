"""Build the embedded datasets from their canonical downloads when no mirror is available.

The mirror's arrays were made from the same sources; builds here follow the same recipe, but byte
identity is not promised (decoders and file order differ), so built files are checked by shape.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..io import save_npz
from .mirror import download

PACS_ZIP = "https://github.com/MachineLearning2020/Homework3-PACS/archive/d586a6cf3db84896fb6cc465c7bf51bdaf6d65d8.zip"
IMAGENET_SAMPLES_ZIP = "https://github.com/EliSchwartz/imagenet-sample-images/archive/bc69043e2862758a1906c6a24a792bb28c6bb2ff.zip"
PACS_DOMAINS = ("photo", "art_painting", "cartoon", "sketch")
PACS_CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")


def _square(img, size: int) -> np.ndarray:
    """Resize the short side to `size` (bicubic) and centre-crop, as the mirror's arrays were made."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def cifar10(dest: Path, per_class: int = 1000) -> None:
    """CIFAR-10 via torchvision: the first `per_class` train images of each class + the full test set."""
    import torchvision

    with tempfile.TemporaryDirectory() as tmp:
        train = torchvision.datasets.CIFAR10(tmp, train=True, download=True)
        test = torchvision.datasets.CIFAR10(tmp, train=False, download=True)
        ytr = np.asarray(train.targets)
        keep = np.sort(np.concatenate([np.flatnonzero(ytr == c)[:per_class] for c in range(10)]))
        save_npz(dest, x_train=train.data[keep], y_train=ytr[keep].astype(np.int64),
                 x_test=test.data, y_test=np.asarray(test.targets, dtype=np.int64))


def _zip_images(url: str, dest_dir: Path) -> zipfile.ZipFile:
    path = download(url, dest_dir / Path(url).name)
    return zipfile.ZipFile(path)


def pacs(dest: Path, size: int = 64) -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        zf = _zip_images(PACS_ZIP, Path(tmp))
        arrays: dict[str, np.ndarray] = {}
        for domain in PACS_DOMAINS:
            xs, ys = [], []
            for c, cls in enumerate(PACS_CLASSES):
                names = sorted(n for n in zf.namelist() if f"/PACS/{domain}/{cls}/" in n and not n.endswith("/"))
                for n in names:
                    xs.append(_square(Image.open(io.BytesIO(zf.read(n))), size))
                    ys.append(c)
            arrays[f"x_{domain}"] = np.stack(xs)
            arrays[f"y_{domain}"] = np.asarray(ys, dtype=np.int64)
        save_npz(dest, **arrays)


def imagenet_samples(dest: Path, size: int = 96) -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        zf = _zip_images(IMAGENET_SAMPLES_ZIP, Path(tmp))
        files = sorted(n for n in zf.namelist() if n.lower().endswith((".jpeg", ".jpg")))
        wnids = [Path(n).name.split("_")[0] for n in files]
        order = np.argsort(wnids, kind="stable")
        x = np.stack([_square(Image.open(io.BytesIO(zf.read(files[i]))), size) for i in order])
        w = np.asarray([wnids[i] for i in order])
        save_npz(dest, x=x, y=np.arange(len(w), dtype=np.int64), wnid=w)


BUILDERS = {"cifar10": cifar10, "pacs": pacs, "imagenet_samples": imagenet_samples}
