"""Crash-safe file writing and hashing: nothing is ever left half-written under its final name."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import ChecksumError, OutputError

SHA256_SUFFIX = ".sha256"  # sidecar `<file>.sha256` ("<hex>  <name>", sha256sum format) next to each saved output


_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write to {path.parent}: {e.strerror}; choose a writable output directory") from e
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared like any other file
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_torch(path: str | os.PathLike, obj: Any) -> str:
    """torch.save atomically, every tensor in host memory (a GPU run's file loads anywhere); returns the
    sha256 of the written file."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object, not the random temp name, sets the archive's record names:
            torch.save(_on_host(obj), f)  # the same object gives byte-identical files (reproducible sha256)
        digest = sha256_file(tmp)
        sha256_sidecar(path).unlink(missing_ok=True)  # a kill before the new sidecar leaves none, never a stale one
    _write_sidecar(path, digest)
    return digest


def _on_host(obj: Any) -> Any:
    """obj with GPU tensors copied to the CPU. Containers without one are returned as they are, so a CPU
    run saves exactly the object it was given (a state_dict keeps its `_metadata`)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "cpu" else obj.cpu()
    if isinstance(obj, dict):
        items = {k: _on_host(v) for k, v in obj.items()}
        if all(items[k] is v for k, v in obj.items()):
            return obj
        out = type(obj)(items)  # dict, OrderedDict (state_dict)
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if type(obj) in (list, tuple):
        items = [_on_host(v) for v in obj]
        return obj if all(a is b for a, b in zip(items, obj)) else type(obj)(items)
    return obj


def save_npz(path: str | os.PathLike, **arrays: Any) -> str:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        digest = sha256_file(tmp)
        sha256_sidecar(path).unlink(missing_ok=True)
    _write_sidecar(path, digest)
    return digest


def sha256_sidecar(path: str | os.PathLike) -> Path:
    """Where the sha256 of a file written by save_torch/save_npz is recorded."""
    path = Path(path)
    return path.with_name(path.name + SHA256_SUFFIX)


def _write_sidecar(path: str | os.PathLike, digest: str) -> None:
    with atomic_path(sha256_sidecar(path)) as tmp:
        tmp.write_text(f"{digest}  {Path(path).name}\n")


def verify_sha256(path: str | os.PathLike) -> None:
    """Raise ChecksumError when `path` differs from the sha256 recorded next to it (files without a sidecar pass)."""
    side = sha256_sidecar(path)
    if not side.is_file() or not Path(path).is_file():  # a missing file is its reader's error to report
        return
    try:
        expected = side.read_text().split()[0]
    except (OSError, IndexError):
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(f"{path}: sha256 {actual[:12]}… differs from the {expected[:12]}… recorded in {side.name} when it was "
                            "written (tampered or corrupt); delete both files and rerun the stage that makes it")


def remove(path: str | os.PathLike) -> None:
    """Delete a file written by save_torch/save_npz and its sha256 sidecar (missing ones are fine)."""
    Path(path).unlink(missing_ok=True)
    sha256_sidecar(path).unlink(missing_ok=True)
