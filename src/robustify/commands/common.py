"""Argument and start-up helpers shared by subcommands (params loading, threads, record + MLflow)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any, Optional

from ..config import Params, load_params
from ..data import mirror
from ..errors import OutputError

log = logging.getLogger("robustify")


def int_in(lo: int, hi: Optional[int] = None):
    """argparse type: an int within lo..hi, else the usual one-line usage error (exit 2) — never a silent default."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi if hi is not None else ''}; pick a value in range")
        return value

    parse.__name__ = "int"
    return parse


def device_spec(text: str) -> str:
    """argparse type of --device: the spelling is checked here, the GPU's presence when a command starts."""
    from ..device import SPEC

    if not SPEC.match(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not one of auto, cpu, cuda, cuda:N")
    return text


def add_params_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=os.environ.get("ROBUSTIFY_PARAMS", "params.yaml"),
                   help="parameter file (default: $ROBUSTIFY_PARAMS, set by the Snakefile to its resolved config, else params.yaml)")
    p.add_argument("--configfile", action="append", default=[], metavar="PRESET",
                   help="preset merged over --params, as snakemake --configfile (repeatable)")
    p.add_argument("--threads", type=int_in(0, 256), default=None, help="torch threads (default: params threads)")
    p.add_argument("--device", type=device_spec, default=None, help="auto, cpu, cuda or cuda:N (default: params device)")


def load(args: argparse.Namespace) -> Params:
    """Validate params (+ presets), point the data layer at the mirror, pick the thread count and device."""
    from .. import device

    params = load_params(args.params, args.configfile)
    mirror.configure(params.data.mirror, params.data.cache)
    set_threads(args.threads if getattr(args, "threads", None) else params.threads)
    device.use(getattr(args, "device", None) or params.device)
    keep_freed_memory()
    return params


def set_threads(threads: int) -> int:
    """0 = share the cores among concurrent jobs (Snakemake passes ROBUSTIFY_JOBS); avoids oversubscription."""
    import torch

    if threads == 0:
        jobs = max(1, int(os.environ.get("ROBUSTIFY_JOBS", "1")))
        threads = max(1, (os.cpu_count() or 1) // jobs)
    torch.set_num_threads(threads)
    return threads


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse: no mmap per large block, no trimming.

    glibc serves every block over 32 MB (its mmap ceiling) with a fresh mmap whose pages fault in,
    zeroed, on first touch. EfficientNet-Lite0's E2E step at 96 px (384 images, activations of up to
    ~340 MB) spent more time in the kernel than computing: 5.8 → 2.3 s per step with this (one thread),
    the whole job 1486 → 557 s. The price is peak RSS (that job 6.4 → 9.2 GB: freed blocks stay in the
    process). ROBUSTIFY_MALLOC=default turns it off; a no-op where the C library is not glibc."""
    if os.environ.get("ROBUSTIFY_MALLOC", "reuse") != "reuse":
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def check_writable(*paths: str | os.PathLike) -> None:
    """Fail before long work starts when an output directory cannot be created or written."""
    for path in paths:
        parent = Path(path).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create {parent} ({e.strerror}); choose a writable output path") from None
        if not os.access(parent, os.W_OK):
            raise OutputError(f"{parent} is not writable; fix its permissions or choose another output path")


def publish(record: dict, out: str | os.PathLike, params: Params, section: Any = None, artifacts: tuple = ()) -> None:
    """Write the record (the output of record), then log it to MLflow (best effort)."""
    from ..records import write_record
    from ..track import log_record
    from ..train.distributed import current

    if not current().is_main:  # issue 12: under torchrun only rank 0 writes records
        return
    write_record(out, record)
    sub = section.model_dump(mode="json") if hasattr(section, "model_dump") else (section or {})
    log_record(record, out, uri=params.tracking.uri, experiment=params.tracking.experiment, params=sub, artifacts=artifacts)
    log.info("record written: %s", out)
