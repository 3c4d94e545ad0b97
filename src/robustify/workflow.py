"""Glue the Snakefile imports: hand Snakemake's resolved config to every `robustify` job."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

ENV_PARAMS = "ROBUSTIFY_PARAMS"


def export_params(config: dict, root: str | os.PathLike = ".snakemake/robustify") -> str:
    """Write `config` (params.yaml + --configfile presets + --config) to a file named by its hash and
    point $ROBUSTIFY_PARAMS (the CLI's --params default) at it; jobs inherit the environment.

    One file per distinct config, written atomically, so concurrent Snakemake runs never clobber
    each other. Returns the path.
    """
    text = yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=True)
    path = Path(root) / f"params-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    os.environ[ENV_PARAMS] = str(path)
    return str(path)
