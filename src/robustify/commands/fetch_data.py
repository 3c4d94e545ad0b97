"""robustify fetch-data: resolve and verify every raw file; write a manifest of verified paths."""

from __future__ import annotations

from pathlib import Path

from ..io import write_json
from .common import add_params_args, check_writable, load

NAME = "fetch-data"
HELP = "resolve every raw dataset/weight file (mirror or download), verify sha256, write a manifest"


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--out", default="data/raw/manifest.json", help="manifest of verified files")


def run(args) -> None:
    load(args)
    from ..data.mirror import expected_sha256, mirror_dir, resolve
    from ..data.sources import SOURCES
    from ..io import sha256_file

    check_writable(args.out)
    mirror = mirror_dir()
    files = {}
    for name in SOURCES:
        path = resolve(name)
        files[name] = {"path": str(path), "sha256": expected_sha256(name, mirror) or sha256_file(path)}
        print(f"ok  {name}  {path}")
    write_json(args.out, {"mirror": str(mirror) if mirror else None, "files": files})
