"""Evaluation suites: named groups of datasets, each knowing its label space, its logit projection
(class mask or class mapping) and whether it is a distribution shift.

Embedded profile (DESIGN.md §2): `clean` (CIFAR-10 test), `c` (CIFAR-10-C made by `robustify corrupt`),
`r` (PACS art_painting + cartoon, dog/horse, scored 10-way), `sketch` (PACS sketch dog/horse),
`objectnet` (PACS photo dog/horse) and `objectnet_c` (its corrupted copy).
Paper preset: image folders from params `evaluate.paper_paths` — `imagenet` (val, root/<wnid>/),
`imagenet_c` (root/<corruption>/<severity>/<wnid>/), `imagenet_r` / `imagenet_a` (200-class masks),
`imagenet_sketch`, `imagenet_v2` (root/<class index>/), `imagenet_objectnet` (113 classes, wise-ft
mapping, 2-px border crop) and `imagenet_objectnet_c` (root/<corruption>/<severity>/<folder>/).
As in wise-ft, each shift is a class that knows its class sublist and logit projection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..data.datasets import CIFAR10_CLASSES, ArrayDataset, check_arrays, load_npz
from ..errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SHIFT_DOG_HORSE = ("dog", "horse")


# ---------------------------------------------------------------------------------------------
# evaluation sets


@dataclass
class EvalSet:
    """One dataset of a suite. `batches(batch_size)` yields uint8 NHWC images and labels in `classes`."""

    name: str
    suite: str
    shifted: bool
    classes: tuple
    size: Optional[int]  # None: known once loaded
    _batches: Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]]
    project: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    tags: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self._batches(batch_size)


def array_set(name: str, suite: str, shifted: bool, load: Callable[[], ArrayDataset], per_class: Optional[int] = None,
              eager: bool = True, classes: Sequence[str] = CIFAR10_CLASSES, **kw) -> EvalSet:
    """An EvalSet over an ArrayDataset. `eager`: load now (small sets; errors surface before any model
    runs) and keep it; otherwise load on each iteration and drop it after (many large cells)."""
    if not eager:
        def batches(bs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            ds = load().head(per_class)
            for i in range(0, len(ds), bs):
                yield ds.x[i:i + bs], ds.y[i:i + bs]

        return EvalSet(name, suite, shifted, tuple(classes), None, batches, **kw)
    ds = load().head(per_class)

    def cached(bs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(0, len(ds), bs):
            yield ds.x[i:i + bs], ds.y[i:i + bs]

    return EvalSet(name, suite, shifted, tuple(ds.classes), len(ds), cached, **kw)


def folder_set(name: str, suite: str, shifted: bool, samples: Sequence[tuple[Path, int]], classes: Sequence[str],
               image_size: int, border: int = 0, per_class: Optional[int] = None, **kw) -> EvalSet:
    """An EvalSet over image files, decoded batch by batch at `image_size` (short side + centre crop)."""
    if per_class is not None:
        seen: dict[int, int] = {}
        kept = []
        for path, label in samples:
            if seen.get(label, 0) < per_class:
                kept.append((path, label))
                seen[label] = seen.get(label, 0) + 1
        samples = kept
    if not samples:
        raise DataError(f"{name}: no images found; check evaluate.paper_paths or the folder layout")

    def batches(bs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(0, len(samples), bs):
            chunk = samples[i:i + bs]
            yield np.stack([load_image(p, image_size, border) for p, _ in chunk]), np.asarray([lab for _, lab in chunk], dtype=np.int64)

    return EvalSet(name, suite, shifted, tuple(classes), len(samples), batches, **kw)


def load_image(path: Path, size: int, border: int = 0) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from ..data.build import _square

    try:
        img = Image.open(path)
        if border:
            img = img.crop((border, border, img.width - border, img.height - border))
        return _square(img, size)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"{path}: unreadable image ({type(e).__name__}); remove or replace it") from None


def scan_folder(root: Path, folder_to_label: dict[str, int]) -> list[tuple[Path, int]]:
    """(file, label) for root/<folder>/<image>, folders not in the mapping skipped; sorted."""
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder; fix evaluate.paper_paths or --data")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name in folder_to_label):
        out += [(f, folder_to_label[folder.name]) for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return out


# ---------------------------------------------------------------------------------------------
# ImageNet label spaces: 1000 synsets in PyTorch order, 200-class masks, ObjectNet's 113-class mapping


@lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in PyTorch (sorted) index order."""
    return tuple(_timm_info("imagenet_synsets.txt").split())


@lru_cache(maxsize=1)
def imagenet_lemmas() -> tuple[str, ...]:
    """WordNet lemma strings of the 1000 classes in PyTorch order ('tench, Tinca tinca', …)."""
    table = dict(line.split("\t", 1) for line in _timm_info("imagenet_synset_to_lemma.txt").splitlines() if "\t" in line)
    return tuple(table[w] for w in imagenet_synsets())


def _timm_info(name: str) -> str:
    from importlib import resources

    return resources.files("timm.data._info").joinpath(name).read_text()


def subset_mask(wnids: Sequence[str]) -> np.ndarray:
    """PyTorch indices of `wnids` (ImageNet-R/-A: 200 classes), in the order given."""
    index = {w: i for i, w in enumerate(imagenet_synsets())}
    unknown = [w for w in wnids if w not in index]
    if unknown:
        raise DataError(f"wnids {unknown[:3]} are not ImageNet-1k classes; check the dataset folders")
    return np.asarray([index[w] for w in wnids], dtype=np.int64)


def imagenet_r_wnids() -> tuple[str, ...]:
    return tuple(_timm_info("imagenet_r_synsets.txt").split())


def imagenet_a_wnids() -> tuple[str, ...]:
    return tuple(_timm_info("imagenet_a_synsets.txt").split())


def mask_logits(indices: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits over the dataset's class sublist: logits[:, indices] (wise-ft ImageNet-R/-A)."""
    idx = torch.as_tensor(indices)

    def project(logits: torch.Tensor) -> torch.Tensor:
        return logits.index_select(-1, idx.to(logits.device))

    return project


def max_logits(groups: Sequence[Sequence[int]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logit of class k = max over its ImageNet classes groups[k] (wise-ft ObjectNet projection)."""
    width = max(len(g) for g in groups)
    pad = torch.tensor([list(g) + [g[0]] * (width - len(g)) for g in groups])  # repeat a member: max unchanged

    def project(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, pad.to(logits.device)].amax(-1)

    return project


@dataclass(frozen=True)
class ObjectNetMapping:
    folders: tuple  # the 113 ObjectNet folder names, sorted: label k = folders[k]
    imagenet_ids: tuple  # per label: the PyTorch indices of its ImageNet classes
    class_sublist: tuple  # sorted PyTorch indices used by any ObjectNet class

    @property
    def folder_to_label(self) -> dict[str, int]:
        return {f: k for k, f in enumerate(self.folders)}


def objectnet_mapping(folder_to_objectnet: dict[str, str], objectnet_to_imagenet: dict[str, str],
                      pytorch_to_2012: dict[str, int], names_2012: Sequence[str]) -> ObjectNetMapping:
    """wise-ft's get_metadata(): ObjectNet folder → ObjectNet name → ImageNet names ('; '-separated)
    → ImageNet-2012 id (line number in `names_2012`) → PyTorch index."""
    folder_of = {name: folder for folder, name in folder_to_objectnet.items()}
    pytorch_of_2012 = {int(v): int(k) for k, v in pytorch_to_2012.items()}
    index = {name.strip(): pytorch_of_2012[i] for i, name in enumerate(names_2012)}
    per_folder: dict[str, list[int]] = {}
    for on_name, in_names in objectnet_to_imagenet.items():
        try:
            per_folder[folder_of[on_name]] = [index[n] for n in in_names.split("; ")]
        except KeyError as e:
            raise DataError(f"ObjectNet mapping: '{e.args[0]}' has no counterpart; the mapping JSONs do not match") from None
    folders = tuple(sorted(per_folder))
    return ObjectNetMapping(folders, tuple(tuple(per_folder[f]) for f in folders),
                            tuple(sorted({i for ids in per_folder.values() for i in ids})))


def names_in_2012_order(pytorch_to_2012: dict[str, int], lemmas: Sequence[str]) -> list[str]:
    """ImageNet names indexed by 2012 id, from names in PyTorch order (stands in for wise-ft's
    imagenet_to_label_2012_v2, which is not shipped)."""
    out = [""] * len(lemmas)
    for k, v in pytorch_to_2012.items():
        out[int(v)] = lemmas[int(k)]
    return out


@lru_cache(maxsize=2)
def shipped_objectnet_mapping(names_2012_file: Optional[str] = None) -> ObjectNetMapping:
    """The mapping from the shipped wise-ft JSONs (resolved and sha256-checked by the data layer)."""
    from ..data.mirror import resolve

    def read(name: str) -> dict:
        return json.loads(resolve(name).read_text())

    p2 = read("pytorch_to_imagenet_2012_id.json")
    if names_2012_file:
        path = Path(names_2012_file)
        if not path.is_file():
            raise DataError(f"{path}: no such file; fix evaluate.imagenet_names_2012 or set it to null")
        names = path.read_text().splitlines()
    else:
        names = names_in_2012_order(p2, imagenet_lemmas())
    return objectnet_mapping(read("folder_to_objectnet_label.json"), read("objectnet_to_imagenet_1k.json"), p2, names)


# ---------------------------------------------------------------------------------------------
# corrupted copies written by `robustify corrupt` (data/cifar10_c, data/objectnet_c)


_CHUNK_SHA256: dict[Path, str] = {}  # chunk path -> sha256 listed in its manifest (filled by corrupted_cells)


def corrupted_cells(root: Path) -> dict[tuple[str, int], list[Path]]:
    """(corruption, severity) → its .npz chunk files, from root/manifest.json as `robustify corrupt`
    writes it ({"cells": [{"corruption", "severity", "files": [{"file": "<c>/<s>/<chunk>.npz"}, …]}]}).
    The manifest is written last, so a copy without one is incomplete and is refused."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: corrupted copy not found; run `robustify corrupt` (or dvc repro corrupt) first")
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise DataError(f"{root}: no manifest.json, the corrupted copy is incomplete; rerun `robustify corrupt` to finish it")
    cells: dict[tuple[str, int], list[Path]] = {}
    try:
        for cell in json.loads(manifest.read_text())["cells"]:
            files = [f["file"] if isinstance(f, dict) else f for f in cell["files"]]
            _CHUNK_SHA256.update({root / f["file"]: f["sha256"] for f in cell["files"]
                                  if isinstance(f, dict) and len(str(f.get("sha256", ""))) == 64})  # a real digest, not a placeholder
            cells.setdefault((str(cell["corruption"]), int(cell["severity"])), []).extend(root / f for f in files)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{manifest}: unreadable manifest ({type(e).__name__}); rerun `robustify corrupt`") from None
    if not cells:
        raise DataError(f"{root}: the manifest lists no corrupted arrays; rerun `robustify corrupt`")
    return {k: sorted(v) for k, v in sorted(cells.items())}


def _verify_chunk(f: Path) -> None:
    """issue 11: a chunk must match the sha256 its manifest lists (hashed once per process)."""
    if f in _CHUNK_SHA256:
        from ..data.mirror import verify
        from ..errors import ChecksumError

        try:
            verify(f, _CHUNK_SHA256[f])
        except ChecksumError as e:
            raise ChecksumError(str(e).split("; replace it")[0] + "; rerun `robustify corrupt` (it redoes changed chunks)") from None


def read_cell(files: Sequence[Path], classes: Sequence[str], name: str) -> ArrayDataset:
    xs, ys = [], []
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: listed in the manifest but missing; rerun `robustify corrupt`")
        _verify_chunk(f)
        a = load_npz(f, ["x", "y"])
        xs.append(a["x"])
        ys.append(a["y"].astype(np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    check_arrays(x, y, len(classes), name)
    return ArrayDataset(name, x, y, tuple(classes))


def corrupted_suite(suite: str, root: Path, severities: Sequence[int], corruptions: Sequence[str],
                    classes: Sequence[str] = CIFAR10_CLASSES, per_class: Optional[int] = None) -> list[EvalSet]:
    cells = corrupted_cells(root)
    have = sorted({c for c, _ in cells})
    wanted = list(corruptions) or have
    missing = [c for c in wanted if c not in have]
    if missing:
        raise DataError(f"{root}: corruptions {missing} not generated (has {have}); fix evaluate.c_corruptions or rerun `robustify corrupt`")
    sets = []
    for c in wanted:
        for s in severities:
            if (c, s) not in cells:
                raise DataError(f"{root}: {c} severity {s} not generated; fix evaluate.c_severities or rerun `robustify corrupt`")
            files = cells[(c, s)]
            absent = [f for f in files if not f.is_file()]
            if absent:
                raise DataError(f"{absent[0]}: listed in the manifest but missing; rerun `robustify corrupt`")
            for chunk in files:  # issue 11: before any model runs
                _verify_chunk(chunk)
            sets.append(array_set(f"{suite}/{c}/{s}", suite, True, lambda f=files, n=f"{suite}/{c}/{s}": read_cell(f, classes, n),
                                  per_class, eager=False, classes=classes, tags={"corruption": c, "severity": s}))
    return sets


# ---------------------------------------------------------------------------------------------
# suites


def _pacs_shift(name: str, domains: Sequence[str], per_class: Optional[int]) -> EvalSet:
    from ..data.datasets import pacs

    def load() -> ArrayDataset:
        parts = [pacs(d, SHIFT_DOG_HORSE, CIFAR10_CLASSES) for d in domains]
        return ArrayDataset(f"pacs_{'+'.join(domains)}", np.concatenate([p.x for p in parts]),
                            np.concatenate([p.y for p in parts]), CIFAR10_CLASSES)

    return array_set(name, name, True, load, per_class, tags={"domains": list(domains)})


def embedded_suite(suite: str, cfg, data_root: str | Path) -> list[EvalSet]:
    from ..data.datasets import cifar10

    root = Path(data_root)
    if suite == "clean":
        return [array_set("clean", "clean", False, lambda: cifar10("test"), cfg.per_class)]
    if suite == "c":
        return corrupted_suite("c", root / "cifar10_c", cfg.c_severities, cfg.c_corruptions, CIFAR10_CLASSES, cfg.per_class)
    if suite == "r":
        return [_pacs_shift("r", ("art_painting", "cartoon"), cfg.per_class)]
    if suite == "sketch":
        return [_pacs_shift("sketch", ("sketch",), cfg.per_class)]
    if suite == "objectnet":
        return [_pacs_shift("objectnet", ("photo",), cfg.per_class)]
    if suite == "objectnet_c":
        return corrupted_suite("objectnet_c", root / "objectnet_c", cfg.c_severities, cfg.c_corruptions, CIFAR10_CLASSES, cfg.per_class)
    raise ConfigError(f"unknown embedded suite '{suite}'")


def _paper_root(cfg, suite: str) -> Path:
    path = cfg.paper_paths.get(suite)
    if not path:
        raise ConfigError(f"suite {suite} needs evaluate.paper_paths.{suite} (an image-folder root); set it in the paper preset")
    return Path(path).expanduser()


def _corrupted_folders(root: Path, severities: Sequence[int], corruptions: Sequence[str]) -> list[tuple[str, int, Path]]:
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder; fix evaluate.paper_paths")
    have = sorted(p.name for p in root.iterdir() if p.is_dir())
    wanted = list(corruptions) or have
    out = []
    for c in wanted:
        for s in severities:
            d = root / c / str(s)
            if not d.is_dir():
                raise DataError(f"{d}: missing; the corrupted copy needs root/<corruption>/<severity>/<class>/")
            out.append((c, s, d))
    return out


def paper_suite(suite: str, cfg, image_size: int) -> list[EvalSet]:
    """ImageNet-family suites over image folders; the model is expected to predict 1000 ImageNet classes."""
    wnids = imagenet_synsets()
    by_wnid = {w: i for i, w in enumerate(wnids)}
    root = _paper_root(cfg, suite)
    pc = cfg.per_class
    if suite in ("imagenet", "imagenet_sketch"):
        return [folder_set(suite, suite, suite != "imagenet", scan_folder(root, by_wnid), wnids, image_size, per_class=pc)]
    if suite == "imagenet_v2":
        return [folder_set(suite, suite, True, scan_folder(root, {str(i): i for i in range(1000)}), wnids, image_size, per_class=pc)]
    if suite in ("imagenet_r", "imagenet_a"):
        sub = imagenet_r_wnids() if suite == "imagenet_r" else imagenet_a_wnids()
        return [folder_set(suite, suite, True, scan_folder(root, {w: k for k, w in enumerate(sub)}), sub, image_size,
                           per_class=pc, project=mask_logits(subset_mask(sub)))]
    if suite == "imagenet_c":
        return [folder_set(f"{suite}/{c}/{s}", suite, True, scan_folder(d, by_wnid), wnids, image_size, per_class=pc,
                           tags={"corruption": c, "severity": s})
                for c, s, d in _corrupted_folders(root, cfg.c_severities, cfg.c_corruptions)]
    if suite in ("imagenet_objectnet", "imagenet_objectnet_c"):
        m = shipped_objectnet_mapping(cfg.imagenet_names_2012)
        project = max_logits(m.imagenet_ids)
        if suite == "imagenet_objectnet":
            return [folder_set(suite, suite, True, scan_folder(root, m.folder_to_label), m.folders, image_size, border=2,
                               per_class=pc, project=project)]
        return [folder_set(f"{suite}/{c}/{s}", suite, True, scan_folder(d, m.folder_to_label), m.folders, image_size,
                           border=2, per_class=pc, project=project, tags={"corruption": c, "severity": s})
                for c, s, d in _corrupted_folders(root, cfg.c_severities, cfg.c_corruptions)]
    raise ConfigError(f"unknown paper suite '{suite}'")


def user_set(path: str | Path, classes: Sequence[str], image_size: int, per_class: Optional[int] = None,
             label_space: Sequence[str] = CIFAR10_CLASSES) -> EvalSet:
    """A user's own shift: an .npz with x/y (y indexes `classes`), or an image folder root/<class name>/*.jpg.

    When `classes` is a subset of the model's `label_space` (e.g. dog,horse of CIFAR-10), labels are
    moved into that space and scored against all of its classes, as the PACS analogues are.
    """
    from ..data.datasets import user_npz

    path = Path(path)
    classes = tuple(classes)
    into = tuple(label_space) if set(classes) <= set(label_space) else classes
    remap = np.asarray([into.index(c) for c in classes], dtype=np.int64)
    if path.is_dir():
        samples = [(f, int(remap[k])) for f, k in scan_folder(path, {c: i for i, c in enumerate(classes)})]
        return folder_set(path.name, "user", True, samples, into, image_size, per_class=per_class)

    def load() -> ArrayDataset:
        ds = user_npz(path, classes)
        return ArrayDataset(ds.name, ds.x, remap[ds.y], into)

    return array_set(path.stem, "user", True, load, per_class)


def build_suites(names: Sequence[str], cfg, data_root: str | Path, image_size: int) -> dict[str, list[EvalSet]]:
    """{suite: [EvalSet]} for the dataset suites among `names` (transfer/retention are probes, not here)."""
    from ..config import EMBEDDED_SUITES, PAPER_SUITES

    out = {}
    for s in names:
        if s in EMBEDDED_SUITES:
            out[s] = embedded_suite(s, cfg, data_root)
        elif s in PAPER_SUITES:
            out[s] = paper_suite(s, cfg, image_size)
    return out
