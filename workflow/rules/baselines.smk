# Baselines of the paper's tables: linear probe (LP head of ImageNet students) and the original model.


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
    threads: workflow.cores
    conda:
        "../envs/robustify.yaml"
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
    threads: workflow.cores
    conda:
        "../envs/robustify.yaml"
    shell:
        "robustify baseline --method original --student {wildcards.student} {params.head}"
        " --threads {threads} --record {output.record} > {log} 2>&1"


rule baselines:
    input:
        expand("results/metrics/baselines/linear_probe/{student}.json", student=LP_STUDENTS),
        expand("results/metrics/baselines/original/{student}.json", student=STUDENTS),
