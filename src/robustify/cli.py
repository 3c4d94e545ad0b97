"""The one entry point: `robustify <subcommand>`. Snakemake rules and DVC stages call only this.

Errors a user can cause are `RobustifyError`s; they are caught here, once, and become one line on
stderr and exit code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import resource
import sys
import time
from typing import Optional, Sequence

from . import __version__
from .commands import COMMAND_MODULES
from .errors import RobustifyError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robustify", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"robustify {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<subcommand>")
    for modname in COMMAND_MODULES:
        mod = importlib.import_module(f".commands.{modname}", __package__)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


RESOURCES = "resources:"  # the last line of every finished command; benchmarks/pipeline_times.py reads it


def resources_line(wall_s: float) -> str:
    """CPU seconds (user + system, this process and its waited-for children), wall seconds, peak RSS.

    Snakemake's `benchmark:` samples a job's CPU time every 30 s after the first 15 s and keeps the last
    sample, so it misses up to 30 s per job (a fifth of a 2-minute job); this line is exact."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    rss_mb = max(own.ru_maxrss, kids.ru_maxrss) / 1024  # KiB on Linux
    return f"{RESOURCES} cpu_s={cpu:.2f} wall_s={wall_s:.2f} max_rss_mb={rss_mb:.0f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    t0 = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args._run(args)
    except RobustifyError as e:
        print(f"robustify {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # issue 11: `robustify check-config | head` is not a crash
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 1
    except KeyboardInterrupt:
        print(f"robustify {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    logging.getLogger("robustify").info(resources_line(time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
