# Tables (CSV), figures (seaborn PNG/PDF) and summary.json from the records — never re-running a model.
# `tables` writes main.csv (Tables 1/3); `report_all` (issue 10) every other table, the figures and
# summary.json, annotated for `snakemake --report`.

REPORT_TABLES = ["zero_shot", "aug_schemes", "ablations", "fcorrect", "kd_pairs", "teacher_student_grid",
                 "robustness_analysis", "claims"]
REPORT_FIGURES = ["figure1_pareto", "figure2_datasets", "figure3_severity", "figure5_grid", "ablations_fcorrect"]
REPORT_FORMATS = config.get("report", {}).get("figure_formats", ["png", "pdf"])


rule tables:
    input:
        rules.baselines.input,
        rules.distill_all.input,
        rules.evaluate_all.input,
    output:
        report("results/tables/main.csv", caption="../report/main.rst", category="Tables", labels={"table": "main"}),
    params:
        sub("report"),
    log:
        "logs/report/tables.log",
    benchmark:
        "logs/benchmarks/report/tables.tsv",
    conda:
        "../envs/report.yaml"
    shell:
        "robustify tables --from records --only main.csv --out-dir results/tables > {log} 2>&1"


rule report_all:
    input:
        rules.tables.output,
        rules.teachers.input,
        rules.distill_all.input,
    output:
        tables=[
            report(f"results/tables/{t}.csv", caption=f"../report/{t}.rst", category="Tables", labels={"table": t})
            for t in REPORT_TABLES
        ],
        figures=[
            report(f"results/figures/{f}.png", caption=f"../report/{f}.rst", category="Figures", labels={"figure": f})
            if fmt == "png"
            else f"results/figures/{f}.{fmt}"
            for f in REPORT_FIGURES
            for fmt in REPORT_FORMATS
        ],
        summary="results/tables/summary.json",
    params:
        sub("report"),
    log:
        "logs/report/report_all.log",
    benchmark:
        "logs/benchmarks/report/report_all.tsv",
    conda:
        "../envs/report.yaml"
    shell:
        "robustify report --from records --exclude-table main.csv --tables-dir results/tables"
        " --figures-dir results/figures > {log} 2>&1"
