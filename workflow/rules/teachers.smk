# Teacher robustification (issue 6): the DeepAugment image set, then every teacher × scheme × seed
# (params: models.teachers × teachers.schemes × teachers.seeds, default the top-level seeds).

TEACHER_SCHEMES = config["teachers"]["schemes"]
TEACHER_RECORDS = expand("results/metrics/teachers/{teacher}_{scheme}_s{seed}.json",
                         teacher=TEACHERS, scheme=TEACHER_SCHEMES, seed=TEACHER_SEEDS)


rule deepaugment:
    input:
        "data/raw/manifest.json",
    output:
        "data/deepaugment/{split}.npz",
    priority: 20
    log:
        "logs/deepaugment/{split}.log",
    benchmark:
        "logs/benchmarks/deepaugment/{split}.tsv",
    wildcard_constraints:
        split="train|val|train_full|test",
    threads: JOB_THREADS
    conda:
        "../envs/train.yaml"
    shell:
        "robustify deepaugment --split {wildcards.split} --threads {threads} --out {output} > {log} 2>&1"


rule robustify_teacher:
    input:
        data="data/raw/manifest.json",
        pool=deepaugment_pool,
    output:
        teacher="results/checkpoints/teachers/{teacher}_{scheme}_s{seed}.pt",
        record="results/metrics/teachers/{teacher}_{scheme}_s{seed}.json",
    params:
        pool=deepaugment_arg,
    priority: 20
    log:
        "logs/teachers/{teacher}_{scheme}_s{seed}.log",
    benchmark:
        "logs/benchmarks/teachers/{teacher}_{scheme}_s{seed}.tsv",
    wildcard_constraints:
        teacher="|".join(TEACHERS),
        scheme="augmix|deepaugment|pixmix|augmix_deepaugment|pixmix_augmix",
    threads: JOB_THREADS
    conda:
        "../envs/train.yaml"
    shell:
        "robustify robustify-teacher --teacher {wildcards.teacher} --scheme {wildcards.scheme} --seed {wildcards.seed}"
        " {params.pool} --threads {threads} --out {output.teacher} --record {output.record} > {log} 2>&1"


rule teachers:
    input:
        TEACHER_RECORDS,
