# robustify — the paper's pipeline as a Snakemake DAG (DESIGN.md §4). Thin: config, validation,
# includes, targets. Every rule calls `robustify <subcommand>`; the logic lives in src/robustify.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.json")


include: "workflow/rules/common.smk"


wildcard_constraints:
    student="[a-z0-9_]+",
    teacher="[a-z0-9_]+",
    seed=r"\d+",



include: "workflow/rules/data.smk"
include: "workflow/rules/corrupt.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report_all.output,
