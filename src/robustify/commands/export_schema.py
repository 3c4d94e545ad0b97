"""robustify export-schema: write the JSON schema of params.yaml (Snakemake `validate` uses it)."""

from __future__ import annotations

import json

from ..config import json_schema
from ..io import atomic_path

NAME = "export-schema"
HELP = "write workflow/schemas/params.schema.json from the pydantic config"


def add_arguments(p) -> None:
    p.add_argument("--out", default="workflow/schemas/params.schema.json")


def run(args) -> None:
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    print(args.out)
