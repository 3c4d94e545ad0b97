"""robustify check-config: validate params (+ presets) and print the resolved config."""

from __future__ import annotations

import yaml

from ..config import load_params, params_hash
from .common import add_params_args

NAME = "check-config"
HELP = "validate params.yaml (+ presets) and print the resolved configuration"


def add_arguments(p) -> None:
    add_params_args(p)


def run(args) -> None:
    params = load_params(args.params, args.configfile)
    print(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False), end="")
    print(f"# params_hash: {params_hash(params)}")
