# Corrupted copies (issue 5): CIFAR-10-C from the CIFAR-10 test set (first corruptions.c_subset_per_class
# images per class) and the ObjectNet-C analogue from PACS photo dog+horse; the paper preset points
# corruptions.objectnet_root at an ObjectNet folder (1-px border crop, resize/centre-crop). Settings
# (table, engine, names, severities, seed, chunk size) come from the `corruptions` params section.
# Outputs are directories of .npz chunks; manifest.json is written last and stands for the whole copy.


rule corrupt_cifar10_c:
    output:
        "data/cifar10_c/manifest.json",
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/corrupt/cifar10_c.log",
    benchmark:
        "logs/benchmarks/corrupt/cifar10_c.tsv",
    conda:
        "../envs/corrupt.yaml"
    shell:
        "robustify corrupt --dataset cifar10_test --out {params.out} > {log} 2>&1"


rule corrupt_objectnet_c:
    output:
        "data/objectnet_c/manifest.json",
    params:
        out=lambda w, output: os.path.dirname(output[0]),
        dataset=config["corruptions"]["objectnet_root"] or "objectnet_analogue",
    log:
        "logs/corrupt/objectnet_c.log",
    benchmark:
        "logs/benchmarks/corrupt/objectnet_c.tsv",
    conda:
        "../envs/corrupt.yaml"
    shell:
        "robustify corrupt --dataset {params.dataset} --out {params.out} > {log} 2>&1"
