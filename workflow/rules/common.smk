# Helpers only: the resolved parameter file, wildcard constraints, input functions.
import hashlib
import os
import json
from pathlib import Path

import yaml

STUDENTS = config["models"]["students"]
TEACHERS = config["models"]["teachers"]
SEEDS = config["seeds"]
LP_STUDENTS = config.get("linear_probe", {}).get("students", [])


def _resolved_params_file():
    """The CLI reads exactly what Snakemake resolved (params.yaml + --configfile presets + --config).

    Written once per distinct config, named by its hash, so concurrent runs never clobber each other.
    """
    text = yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=True)
    path = Path(".snakemake/robustify") / f"params-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


PARAMS = _resolved_params_file()
# every `robustify` job reads it (the CLI's --params default); executors pass the environment on
os.environ["ROBUSTIFY_PARAMS"] = PARAMS


def sub(*sections):
    """The config subtrees a rule depends on: passed as `params:` so only their change reruns it."""
    return {s: config.get(s) for s in sections}


wildcard_constraints:
    student="[a-z0-9_]+",
    teacher="[a-z0-9_]+",
    seed=r"\d+",


def lp_head(wildcards):
    """ImageNet-pretrained students are scored through their linear-probe head."""
    if wildcards.student in LP_STUDENTS:
        return f"results/checkpoints/linear_probe/{wildcards.student}.pt"
    return []


def head_arg(wildcards, input):
    return f"--head {input.head}" if input.head else ""
