# Uncertainty-based distillation (issue 7): every {student} × {teacher} × {scheme} × {variant} × {seed}
# of params distill.pairs (within models.students × models.teachers) × distill.schemes × distill.variants × seeds. Inputs: the robust teacher
# of seed teacher_seed_for(seed, teachers.seeds) (variant full only) and, for linear_probe.students, the linear-probe head the heads start from.

DISTILL = config["distill"]
DISTILL_PAIRS = {  # params distill.pairs, limited to models.students × models.teachers (presets switch models)
    s: [t for t in ts if t in config["models"]["teachers"]]
    for s, ts in DISTILL["pairs"].items()
    if s in config["models"]["students"]
}
# no_kd (= APT) uses no teacher: one run per student × scheme × seed, named with teacher "none"
DISTILL_STEMS = list(dict.fromkeys(
    f"{student}_{teacher if variant == 'full' else 'none'}_{scheme}_{variant}_s{seed}"
    for student, teachers in DISTILL_PAIRS.items()
    for teacher in teachers
    for scheme in DISTILL["schemes"]
    for variant in DISTILL["variants"]
    for seed in config["seeds"]
))
DISTILL_CHECKPOINTS = [f"results/checkpoints/students/{stem}.pt" for stem in DISTILL_STEMS]
DISTILL_RECORDS = [f"results/metrics/distill/{stem}.json" for stem in DISTILL_STEMS]
DISTILL_HEADS = {
    s: DISTILL["init_head"].get(s, f"results/checkpoints/linear_probe/{s}.pt")
    for s in DISTILL_PAIRS
    if s in DISTILL["init_head"] or s in config["linear_probe"]["students"]
}


rule distill:
    input:
        data="data/raw/manifest.json",
        teacher=lambda w: DISTILL["teacher_checkpoint"].format(teacher=w.teacher, scheme=w.scheme,
                                                               seed=teacher_seed_for(int(w.seed), TEACHER_SEEDS))
        if w.variant == "full" else [],
        head=lambda w: DISTILL_HEADS.get(w.student, []),
    output:
        student="results/checkpoints/students/{student}_{teacher}_{scheme}_{variant}_s{seed}.pt",
        record="results/metrics/distill/{student}_{teacher}_{scheme}_{variant}_s{seed}.json",
    priority: 10
    log:
        "logs/distill/{student}_{teacher}_{scheme}_{variant}_s{seed}.log",
    benchmark:
        "logs/benchmarks/distill/{student}_{teacher}_{scheme}_{variant}_s{seed}.tsv",
    wildcard_constraints:
        student="|".join(DISTILL_PAIRS) or "none",
        teacher="|".join(sorted({t for ts in DISTILL_PAIRS.values() for t in ts} | {"none"})),
        scheme="|".join(DISTILL["schemes"]),
        variant="full|no_kd",
        seed=r"\d+",
    threads: JOB_THREADS
    conda:
        "../envs/train.yaml"
    shell:
        "robustify distill --student {wildcards.student} --teacher {wildcards.teacher} --scheme {wildcards.scheme}"
        " --variant {wildcards.variant} --seed {wildcards.seed} --threads {threads} --out {output.student} --record {output.record}"
        " > {log} 2>&1"


rule distill_all:
    input:
        DISTILL_RECORDS,
