# Evaluation (issue 8): one MC-dropout pass per model and dataset; every selection rule, Fcorrect,
# u/KL diagnostics, transfer/retention and FLOPs in one record per model. The model list is wired by
# the Snakefile; suites come from params evaluate.suites. Checkpoints of any stage evaluate alike:
# results/checkpoints/<kind>/<id>.pt (students, linear_probe, teachers, …) → results/metrics/evaluate/<kind>/<id>.json.

# corrupted copies read by the suites that need them (made by corrupt.smk; manifest.json is written last)
EVALUATE_DATA = ["data/raw/manifest.json"] + [
    path
    for suite, path in (("c", "data/cifar10_c/manifest.json"), ("objectnet_c", "data/objectnet_c/manifest.json"))
    if suite in config["evaluate"]["suites"]
]


ruleorder: evaluate_pretrained > evaluate


rule evaluate:
    wildcard_constraints:
        kind="[A-Za-z0-9_\-]+(/[A-Za-z0-9_.\-]+)?",
        model_id="[A-Za-z0-9_.\-]+",
    input:
        model="results/checkpoints/{kind}/{model_id}.pt",
        data=EVALUATE_DATA,
    output:
        record="results/metrics/evaluate/{kind}/{model_id}.json",
        samples=directory("results/eval/{kind}/{model_id}"),
    log:
        "logs/evaluate/{kind}/{model_id}.log",
    benchmark:
        "logs/benchmarks/evaluate/{kind}/{model_id}.tsv",
    threads: JOB_THREADS
    conda:
        "../envs/evaluate.yaml"
    shell:
        "robustify evaluate --model {input.model} --model-id {wildcards.model_id} --threads {threads}"
        " --out-dir {output.samples} --record {output.record} > {log} 2>&1"


rule evaluate_pretrained:
    wildcard_constraints:
        name="[A-Za-z0-9_]+",
    input:
        data=EVALUATE_DATA,
    output:
        record="results/metrics/evaluate/pretrained/{name}.json",
        samples=directory("results/eval/pretrained/{name}"),
    log:
        "logs/evaluate/pretrained/{name}.log",
    benchmark:
        "logs/benchmarks/evaluate/pretrained/{name}.tsv",
    threads: JOB_THREADS
    conda:
        "../envs/evaluate.yaml"
    shell:
        "robustify evaluate --pretrained {wildcards.name} --threads {threads}"
        " --out-dir {output.samples} --record {output.record} > {log} 2>&1"


# every model the tables compare: pretrained CIFAR models, linear-probe heads, robust teachers,
# distilled students (ours / no_kd) and the trained baselines
EVALUATE_RECORDS = (
    [f"results/metrics/evaluate/pretrained/{m}.json" for m in dict.fromkeys(STUDENTS + TEACHERS) if m not in LP_STUDENTS]
    + [f"results/metrics/evaluate/linear_probe/{s}.json" for s in LP_STUDENTS]
    + [r.replace("results/metrics/teachers/", "results/metrics/evaluate/teachers/") for r in TEACHER_RECORDS]
    + [c.replace("results/checkpoints/", "results/metrics/evaluate/").removesuffix(".pt") + ".json" for c in DISTILL_CHECKPOINTS]
    + [r.replace("results/metrics/baselines/", "results/metrics/evaluate/baselines/") for r in BASELINE_RECORDS
       if "/zero_shot/" not in r]
)


rule evaluate_all:
    input:
        EVALUATE_RECORDS,
