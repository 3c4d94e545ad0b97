# Raw data and weights: resolved from the mirror (or downloaded) and sha256-verified.


rule fetch_data:
    output:
        "data/raw/manifest.json",
    log:
        "logs/data/fetch_data.log",
    benchmark:
        "logs/benchmarks/data/fetch_data.tsv",
    conda:
        "../envs/data.yaml"
    shell:
        "robustify fetch-data --out {output} > {log} 2>&1"
