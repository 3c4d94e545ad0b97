"""Resolve a raw data/weight file by name: from the mirror (sha256-verified) or by download."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from ..errors import ChecksumError, DataError
from ..io import atomic_path, sha256_file
from .sources import SOURCES

ENV_MIRROR = "ROBUSTIFY_DATA_MIRROR"
ENV_CACHE = "ROBUSTIFY_CACHE"

# set by the CLI from params `data.mirror` / `data.cache`; the environment wins
_configured: dict[str, Optional[str]] = {"mirror": None, "cache": None}
_verified: dict[Path, float] = {}  # path -> mtime verified, so a file is hashed once per process


def configure(mirror: Optional[str] = None, cache: Optional[str] = None) -> None:
    _configured.update(mirror=mirror, cache=cache)


def mirror_dir() -> Optional[Path]:
    value = os.environ.get(ENV_MIRROR) or _configured["mirror"]
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data mirror {path} is not a directory; fix {ENV_MIRROR} or params data.mirror")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or _configured["cache"] or "~/.cache/robustify").expanduser()


def expected_sha256(name: str, mirror: Optional[Path]) -> Optional[str]:
    if name in SOURCES:
        return SOURCES[name].sha256
    if mirror is not None and (mirror / "MANIFEST.json").is_file():
        entry = json.loads((mirror / "MANIFEST.json").read_text()).get(name)
        return entry.get("sha256") if entry else None
    return None


def verify(path: Path, sha256: Optional[str]) -> None:
    if sha256 is None:
        return
    stamp = path.stat().st_mtime
    if _verified.get(path) == stamp:
        return
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(
            f"{path}: sha256 {actual[:12]}… differs from the expected {sha256[:12]}… (corrupt or wrong file); "
            "replace it with the original or delete it to download again"
        )
    _verified[path] = stamp


def resolve(name: str) -> Path:
    """Path to a verified copy of raw file `name` (mirror first, then the download cache)."""
    mirror = mirror_dir()
    sha = expected_sha256(name, mirror)
    if mirror is not None:
        path = mirror / name
        if not path.is_file():
            raise DataError(f"{name} is missing from the data mirror {mirror}; copy it there or unset {ENV_MIRROR} to download")
        verify(path, sha)
        return path
    src = SOURCES.get(name)
    if src is None:
        raise DataError(f"unknown data file '{name}' and no mirror set; set {ENV_MIRROR} to a directory holding it")
    path = cache_dir() / name
    if path.is_file():
        if src.url:
            verify(path, sha)
        return path
    if src.url:
        download(src.url, path, sha)
    else:
        from . import build

        try:
            build.BUILDERS[src.build](path)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
            raise DataError(f"cannot build {name} from its canonical download ({reason}); "
                            f"check the network or set {ENV_MIRROR} to a local mirror") from None
    return path


def download(url: str, dest: Path, sha256: Optional[str] = None, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` atomically, with a progress bar; verify sha256 before the rename."""
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_path(dest) as tmp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    f.write(block)
                    bar.update(len(block))
            if sha256 is not None:
                actual = sha256_file(tmp)
                if actual != sha256:
                    raise ChecksumError(
                        f"{url}: downloaded file has sha256 {actual[:12]}…, expected {sha256[:12]}…; "
                        "the source changed or the transfer was corrupted, retry or use a mirror"
                    )
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise DataError(f"cannot download {url} ({reason}); check the network or set {ENV_MIRROR} to a local mirror") from None
    return dest
