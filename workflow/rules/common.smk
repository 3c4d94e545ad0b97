# Helpers only: the resolved parameter file and input functions.
from robustify.config import teacher_seed_for
from robustify.workflow import export_params

STUDENTS = config["models"]["students"]
TEACHERS = config["models"]["teachers"]
SEEDS = config["seeds"]  # distillation (ours, no_kd = APT); teachers and baselines default to them
TEACHER_SEEDS = config.get("teachers", {}).get("seeds") or SEEDS
BASELINE_SEEDS = config.get("baselines", {}).get("seeds") or SEEDS
LP_STUDENTS = config.get("linear_probe", {}).get("students", [])
# Torch threads of a training/evaluation job: half the cores, so two jobs run side by side. The DAG has
# plenty of independent jobs, and their single-threaded parts (augmented views, data preparation,
# numpy) then overlap instead of idling a core. profiles/slurm sets its own per-rule threads.
JOB_THREADS = max(1, workflow.cores // 2)
# Longest jobs first (`priority`), so short evaluations fill the gaps at the end: DeepAugment pool and
# teachers 20 (the chain pool → teachers → distillation → evaluation), E2E and VPT 15 (6-15 CPU-min
# each; WiSE and four evaluations wait on E2E), distillation 10, the rest 0. Without the 15, the
# default run started Lite0's E2E last and ended on one busy core (README "Pipeline times").


# the CLI reads exactly what Snakemake resolved: see robustify.workflow.export_params
PARAMS = export_params(config)


def sub(*sections):
    """Config subtrees a job reads, given as `params` so that only their change reruns it."""
    return {s: config.get(s) for s in sections}


def lp_head(wildcards):
    """ImageNet-pretrained students are scored through their linear-probe head."""
    if wildcards.student in LP_STUDENTS:
        return f"results/checkpoints/linear_probe/{wildcards.student}.pt"
    return []


def head_arg(wildcards, input):
    return f"--head {input.head}" if input.head else ""


def deepaugment_pool(wildcards):
    """Schemes with DeepAugment read the pre-generated train images."""
    return "data/deepaugment/train.npz" if "deepaugment" in wildcards.scheme else []


def deepaugment_arg(wildcards, input):
    return f"--deepaugment {input.pool}" if input.pool else ""
