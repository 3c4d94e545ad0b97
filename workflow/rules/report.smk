# Tables (and, with the report issue, figures) from the records — never re-running a model.


rule tables:
    input:
        rules.baselines.input,
    output:
        "results/tables/main.csv",
    log:
        "logs/report/tables.log",
    conda:
        "../envs/robustify.yaml"
    shell:
        "robustify tables --from records --out-dir results/tables > {log} 2>&1"
