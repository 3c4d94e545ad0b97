# robustify — the paper's pipeline as a Snakemake DAG (DESIGN.md §4). Thin: config, validation,
# includes, targets. Every rule calls `robustify <subcommand>`; the logic lives in src/robustify.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.json")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.tables.output,
