# Baselines of the paper's tables: linear probe (LP head of ImageNet students), the original model,
# E2E AugMix fine-tuning, WiSE-E2E (one job per alpha), VPT, APT (= distill no_kd) and zero-shot (open_clip).


rule linear_probe:
    input:
        "data/raw/manifest.json",
    output:
        head="results/checkpoints/linear_probe/{student}.pt",
        record="results/metrics/baselines/linear_probe/{student}.json",
    params:
        cfg=sub("data", "models", "linear_probe"),
    log:
        "logs/baselines/linear_probe/{student}.log",
    benchmark:
        "logs/benchmarks/baselines/linear_probe/{student}.tsv",
    threads: JOB_THREADS
    conda:
        "../envs/train.yaml"
    shell:
        "robustify linear-probe --student {wildcards.student} --threads {threads}"
        " --out {output.head} --record {output.record} > {log} 2>&1"


rule original:
    input:
        data="data/raw/manifest.json",
        head=lp_head,
    output:
        record="results/metrics/baselines/original/{student}.json",
    params:
        head=head_arg,
        cfg=sub("data", "models"),
    log:
        "logs/baselines/original/{student}.log",
    benchmark:
        "logs/benchmarks/baselines/original/{student}.tsv",
    threads: JOB_THREADS
    conda:
        "../envs/evaluate.yaml"
    shell:
        "robustify baseline --method original --student {wildcards.student} {params.head}"
        " --threads {threads} --record {output.record} > {log} 2>&1"


BASELINES = config.get("baselines", {})
BASELINE_METHODS = BASELINES.get("methods", ["original", "linear_probe"])
WISE_ALPHAS = BASELINES.get("wise_alphas", [0.25, 0.5, 0.75])
# APT is distillation's no_kd variant: its own job only where distillation does not run no_kd for the student
APT_STUDENTS = [s for s in STUDENTS if s in config["distill"]["n_tunable_blocks"]
                and not (s in DISTILL_PAIRS and "no_kd" in DISTILL["variants"])]
ZERO_SHOT_STUDENTS = config["distill"].get("zero_shot", [])


# records of the trained baselines that params baselines.methods lists (WiSE: one folder per alpha)
BASELINE_RECORDS = [
    f"results/metrics/baselines/{folder}/{student}_s{seed}.json"
    for method, folders, students in (
        ("e2e", ["e2e"], STUDENTS),
        ("wise_e2e", [f"wise_e2e_{a:g}" for a in WISE_ALPHAS], STUDENTS),
        ("vpt", ["vpt"], STUDENTS),
        ("apt", ["apt"], APT_STUDENTS),
    )
    if method in BASELINE_METHODS
    for folder in folders
    for student in students
    for seed in BASELINE_SEEDS
] + [f"results/metrics/baselines/zero_shot/{s}.json" for s in ZERO_SHOT_STUDENTS if "zero_shot" in BASELINE_METHODS]


rule e2e:
    input:
        data="data/raw/manifest.json",
        head=lp_head,
    output:
        model="results/checkpoints/baselines/e2e/{student}_s{seed}.pt",
        record="results/metrics/baselines/e2e/{student}_s{seed}.json",
    params:
        head=head_arg,
        cfg=sub("baselines", "teachers"),
    log:
        "logs/baselines/e2e/{student}_s{seed}.log",
    benchmark:
        "logs/benchmarks/baselines/e2e/{student}_s{seed}.tsv",
    threads: JOB_THREADS
    priority: 15
    conda:
        "../envs/train.yaml"
    shell:
        "robustify baseline --method e2e --student {wildcards.student} --seed {wildcards.seed} {params.head}"
        " --threads {threads} --out {output.model} --record {output.record} > {log} 2>&1"


rule wise_e2e:
    input:
        e2e="results/checkpoints/baselines/e2e/{student}_s{seed}.pt",
        e2e_record="results/metrics/baselines/e2e/{student}_s{seed}.json",
        head=lp_head,
    output:
        model="results/checkpoints/baselines/wise_e2e_{alpha}/{student}_s{seed}.pt",
        record="results/metrics/baselines/wise_e2e_{alpha}/{student}_s{seed}.json",
    params:
        head=head_arg,
    log:
        "logs/baselines/wise_e2e_{alpha}/{student}_s{seed}.log",
    benchmark:
        "logs/benchmarks/baselines/wise_e2e_{alpha}/{student}_s{seed}.tsv",
    wildcard_constraints:
        alpha=r"[0-9.]+",
    threads: JOB_THREADS
    conda:
        "../envs/train.yaml"
    shell:
        "robustify baseline --method wise_e2e --student {wildcards.student} --seed {wildcards.seed} --alpha {wildcards.alpha}"
        " {params.head} --e2e {input.e2e} --threads {threads} --out {output.model} --record {output.record} > {log} 2>&1"


rule vpt:
    input:
        data="data/raw/manifest.json",
        head=lp_head,
    output:
        model="results/checkpoints/baselines/vpt/{student}_s{seed}.pt",
        record="results/metrics/baselines/vpt/{student}_s{seed}.json",
    params:
        head=head_arg,
        cfg=sub("baselines", "teachers"),
    log:
        "logs/baselines/vpt/{student}_s{seed}.log",
    benchmark:
        "logs/benchmarks/baselines/vpt/{student}_s{seed}.tsv",
    threads: JOB_THREADS
    priority: 15
    conda:
        "../envs/train.yaml"
    shell:
        "robustify baseline --method vpt --student {wildcards.student} --seed {wildcards.seed} {params.head}"
        " --threads {threads} --out {output.model} --record {output.record} > {log} 2>&1"


rule apt:
    input:
        data="data/raw/manifest.json",
        head=lp_head,
    output:
        model="results/checkpoints/baselines/apt/{student}_s{seed}.pt",
        record="results/metrics/baselines/apt/{student}_s{seed}.json",
    params:
        head=head_arg,
        cfg=sub("distill", "baselines"),
    log:
        "logs/baselines/apt/{student}_s{seed}.log",
    benchmark:
        "logs/benchmarks/baselines/apt/{student}_s{seed}.tsv",
    threads: JOB_THREADS
    conda:
        "../envs/train.yaml"
    shell:
        "robustify baseline --method apt --student {wildcards.student} --seed {wildcards.seed} {params.head}"
        " --threads {threads} --out {output.model} --record {output.record} > {log} 2>&1"


rule zero_shot:
    input:
        "data/raw/manifest.json",
    output:
        head="results/checkpoints/baselines/zero_shot/{student}.pt",
        record="results/metrics/baselines/zero_shot/{student}.json",
    log:
        "logs/baselines/zero_shot/{student}.log",
    benchmark:
        "logs/benchmarks/baselines/zero_shot/{student}.tsv",
    threads: JOB_THREADS
    conda:
        "../envs/evaluate.yaml"
    shell:
        "robustify baseline --method zero_shot --student {wildcards.student} --threads {threads}"
        " --out {output.head} --record {output.record} > {log} 2>&1"


rule baselines:
    input:
        expand("results/metrics/baselines/linear_probe/{student}.json", student=LP_STUDENTS),
        expand("results/metrics/baselines/original/{student}.json", student=STUDENTS),
        BASELINE_RECORDS,
