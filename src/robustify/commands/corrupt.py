"""robustify corrupt: write the corrupted copy of a dataset (corruptions × severities), resumable.

Layout of --out DIR:
    DIR/<corruption>/<severity>/<chunk:05d>.npz   x (uint8 NHWC), y, seeds, index (into the source)
    DIR/manifest.json                             written last, atomically: settings, counts, seeds, sha256
    DIR/.progress.json                            finished chunks and their sha256 (resume ledger)

Every chunk is written to a temporary file and renamed, then recorded with its sha256 in the ledger.
A rerun skips the chunks whose file still matches its recorded sha256 and redoes the rest, so a kill
loses at most the chunk in flight. Changed settings (dataset, table, engine, seed, subset, chunk size)
discard the old chunks.

Datasets (`--dataset`):
    cifar10_test        the CIFAR-10 test set, first `--subset` images of each class
                        (default: params corruptions.c_subset_per_class)
    objectnet_analogue  PACS photo dog + horse, labelled in the CIFAR-10 label space (64 px)
    PATH.npz            a user array file with x (N,H,W,3 uint8) and y (CIFAR-10 labels)
    PATH/               an image folder root/<class>/*: ObjectNet protocol (crop the 1-px border,
                        resize the short side + centre-crop to corruptions.objectnet_size); labels
                        are the index of the folder name in the sorted folder list
`--subset N` keeps the first N images of each class for any dataset.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ..corruptions.names import ENGINES, SEVERITIES, TABLES
from ..errors import ConfigError, DataError, OutputError
from ..io import atomic_path, sha256_file, write_json
from .common import add_params_args, check_writable, load

NAME = "corrupt"
HELP = "write a corrupted copy of a dataset (ImageNet-C corruptions × severities), resumable, with a manifest"
DATASETS = ("cifar10_test", "objectnet_analogue")

log = logging.getLogger("robustify.corrupt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help=f"{' | '.join(DATASETS)} | PATH.npz | image folder")
    p.add_argument("--out", required=True, help="output directory (manifest.json is written last)")
    p.add_argument("--corruptions", nargs="+", metavar="NAME", help="default: params corruptions.names")
    p.add_argument("--severities", nargs="+", type=int, metavar="S", help="default: params corruptions.severities")
    p.add_argument("--subset", type=int, metavar="N", help="first N images of each class (cifar10_test default: params)")
    p.add_argument("--table", choices=TABLES, help="severity constants (default: params corruptions.table; objectnet_c for ObjectNet)")
    p.add_argument("--engine", choices=ENGINES, help="default: params corruptions.engine")
    p.add_argument("--seed", type=int, help="base seed (default: params corruptions.seed)")
    p.add_argument("--chunk-size", type=int, metavar="N", help="images per chunk file (default: params corruptions.chunk_size)")
    add_params_args(p)


def run(args: argparse.Namespace) -> None:
    params = load(args)
    cfg = params.corruptions
    names = list(args.corruptions or cfg.names)
    severities = list(args.severities or cfg.severities)
    _check_choices(names, severities)
    is_objectnet = args.dataset == "objectnet_analogue" or Path(args.dataset).is_dir()
    table = args.table or (cfg.objectnet_c if is_objectnet else cfg.table)
    engine = args.engine or cfg.engine
    seed = cfg.seed if args.seed is None else args.seed
    chunk = cfg.chunk_size if args.chunk_size is None else args.chunk_size  # issue 11: 0 is an error, not "default"
    if chunk < 1:
        raise ConfigError(f"--chunk-size must be ≥ 1, got {chunk}")
    subset = args.subset if args.subset is not None else (cfg.c_subset_per_class if args.dataset == "cifar10_test" else None)
    if subset is not None and subset < 1:
        raise ConfigError(f"--subset must be ≥ 1 image per class, got {subset}")

    from ..corruptions.engine import check_request

    for name in names:
        for s in severities:
            check_request(name, s, table, engine)
    ds = load_dataset(args.dataset, cfg.objectnet_size).head(subset)
    out = Path(args.out)
    check_writable(out / "manifest.json")
    settings = {
        "dataset": args.dataset, "n_images": len(ds), "image_shape": list(ds.x.shape[1:]), "subset_per_class": subset,
        "table": table, "engine": engine, "seed": seed, "chunk_size": chunk,
        "source_sha256": _array_digest(ds.x, ds.y),
    }
    from ..device import current

    generate(ds, out, names, severities, settings, device=str(current()))  # our engine runs on params device


def _array_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _check_choices(names: list[str], severities: list[int]) -> None:
    from ..corruptions.registry import registered, unknown_name_message

    known = registered()
    for n in names:
        if n not in known:
            raise ConfigError(unknown_name_message(n, known))
    for s in severities:
        if s not in SEVERITIES:
            raise ConfigError(f"severity {s} is not within 1..5; pick from {list(SEVERITIES)}")
    if len(set(names)) != len(names) or len(set(severities)) != len(severities):
        raise ConfigError("a corruption or severity is listed twice; list each once")


def load_dataset(name: str, objectnet_size: int = 224):
    from ..data import datasets as D

    if name == "cifar10_test":
        return D.cifar10("test")
    if name == "objectnet_analogue":
        return D.pacs("photo", ["dog", "horse"], D.CIFAR10_CLASSES)
    path = Path(name)
    if path.suffix == ".npz":
        return D.user_npz(path)
    if path.is_dir():
        folders = sorted(p.name for p in path.iterdir() if p.is_dir())
        if not folders:
            raise DataError(f"{path}: no class folders; expected root/<class>/*.jpg")
        return D.image_folder(path, objectnet_size, classes=folders, border=1)
    raise DataError(f"unknown dataset '{name}'; use {', '.join(DATASETS)}, a .npz file or an image folder")


# ---------------------------------------------------------------------------------------------


def _chunk_path(name: str, severity: int, i: int) -> str:
    return f"{name}/{severity}/{i:05d}.npz"


def generate(ds, out: Path, names: list[str], severities: list[int], settings: dict, device: Optional[str] = None) -> dict:
    """Corrupt `ds` into `out` chunk by chunk (skipping verified chunks of an earlier run); write the manifest."""
    from tqdm import tqdm

    from ..corruptions import corrupt, image_seeds

    n, chunk = len(ds), settings["chunk_size"]
    progress_file = out / ".progress.json"
    done = _read_progress(progress_file, settings, out)
    (out / "manifest.json").unlink(missing_ok=True)  # rewritten last; absent while the copy is incomplete
    for stale in out.rglob(".*.tmp"):  # atomic_path temp files of a killed run: chunks, sidecars, ledger
        stale.unlink(missing_ok=True)
    starts = list(range(0, n, chunk))
    todo = [(c, s, i, a) for c in names for s in severities for i, a in enumerate(starts)]
    already = sum(_chunk_path(c, s, i) in done for c, s, i, _ in todo)
    if already:  # issue 11: say so when a rerun picks up a killed run's chunks
        log.info("resuming: %d of %d chunk(s) already done in %s (verified by sha256 before reuse)", already, len(todo), out)
    cells = []
    bar = tqdm(total=len(todo) * 1, unit="chunk", desc="corrupt", disable=None)
    try:
        for name in names:
            for sev in severities:
                files = []
                for i, a in enumerate(starts):
                    rel = _chunk_path(name, sev, i)
                    idx = np.arange(a, min(a + chunk, n))
                    seeds = image_seeds(settings["seed"], idx, name, sev)
                    entry = done.get(rel)
                    if entry is None or not _matches(out / rel, entry["sha256"]):
                        x = corrupt(ds.x[idx], name, sev, seeds, table=settings["table"], engine=settings["engine"], device=device)
                        digest = _save_chunk(out / rel, x=x, y=ds.y[idx], seeds=seeds, index=idx)
                        entry = {"sha256": digest, "count": len(idx)}
                        done[rel] = entry
                        _write_progress(progress_file, settings, done)
                    files.append({"file": rel, "sha256": entry["sha256"], "count": entry["count"],
                                  "seeds_sha256": _array_digest(seeds)})
                    bar.update(1)
                log.info("%s severity %d: %d images in %d chunk(s)", name, sev, n, len(files))
                cells.append({"corruption": name, "severity": sev, "count": n, "files": files})
    finally:
        bar.close()
    manifest = dict(settings)
    manifest.update({
        "corruptions": names, "severities": severities, "classes": list(ds.classes),
        "seed_scheme": "robustify.corruptions.image_seeds(seed, index, corruption, severity)",
        "robustify_version": _version("robustify"), "reference_version": _version("imagecorruptions-imaug"),
        "cells": cells, "n_files": sum(len(c["files"]) for c in cells),
    })
    try:
        write_json(out / "manifest.json", manifest)
    except OSError as e:
        raise OutputError(f"cannot write {out / 'manifest.json'}: {e.strerror}; free space or choose another --out") from None
    log.info("manifest written: %s", out / "manifest.json")
    return manifest


def _save_chunk(path: Path, **arrays) -> str:
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            return sha256_file(tmp)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; free space or choose another --out (rerun resumes)") from None


def _matches(path: Path, digest: str) -> bool:
    return path.is_file() and sha256_file(path) == digest


def _read_progress(path: Path, settings: dict, out: Path) -> dict:
    """Chunks recorded by an earlier run with the same settings; other settings → start afresh."""
    if not path.is_file():
        return {}
    try:
        prog = json.loads(path.read_text())
        same = prog["settings"] == json.loads(json.dumps(settings))
        chunks = dict(prog["chunks"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("%s is unreadable; regenerating every chunk", path)
        return {}
    if not same:
        log.warning("%s was made with other settings; regenerating every chunk", out)
        for rel in chunks:
            (out / rel).unlink(missing_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
        return {}
    return chunks


def _write_progress(path: Path, settings: dict, chunks: dict) -> None:
    try:
        write_json(path, {"settings": settings, "chunks": chunks})
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}; free space or choose another --out (rerun resumes)") from None


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
