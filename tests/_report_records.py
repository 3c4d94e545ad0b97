"""Synthetic records for the report tests: every stage's record layout with values made by formula.

Construction (percent): a model's accuracy on suite s with seed k is BASE[method] + OFFSET[s] + 0.5·k,
so seed means are BASE + OFFSET + 0.5 (seeds 0, 1, 2) and seed std is 0.5. Built to make some
claims hold and some fail:
- ours beats apt on c (+1.0) but loses on r (−1.0 via R_SHIFT): ours_gt_apt_r fails;
- no_kld is 2 pt below ours everywhere (holds); max_logit is 1 pt above ours (fails);
- ours costs 1 ms/img, wise_e2e 10 ms/img (10×: holds); GFLOPs overhead 3 % (holds).
"""

from __future__ import annotations

from pathlib import Path

from robustify.records import make_record, write_record

SUITES = ["clean", "c", "r", "sketch", "objectnet", "objectnet_c"]
OFFSET = {"clean": 30.0, "c": 0.0, "r": -10.0, "sketch": -20.0, "objectnet": -5.0, "objectnet_c": -15.0}
BASE = {"original": 60.0, "linear_probe": 59.0, "e2e": 62.0, "wise_e2e_0.5": 61.5, "vpt": 59.5, "apt": 62.0, "ours": 63.0}
R_SHIFT = {"ours": -2.0}  # ours r = BASE + OFFSET − 2 → 1 pt below apt on r
RULE_DELTA = {"ours": 0.0, "no_kld": -2.0, "no_uncertainty": -1.0, "max_logit": 1.0, "clean": -0.5, "robust": -1.5,
              "combined": -0.2, "oracle": 8.0}
SEEDS = [0, 1, 2]
COST = {"original": 0.0, "linear_probe": 0.002, "e2e": 0.010, "wise_e2e_0.5": 0.010, "vpt": 0.004, "apt": 0.001, "ours": 0.001}
SCHEME = "augmix_deepaugment"


def acc(method: str, suite: str, seed: int, rule: str = "ours", teacher_bonus: float = 0.0) -> float:
    v = BASE[method] + OFFSET[suite] + 0.5 * seed + teacher_bonus
    if suite == "r":
        v += R_SHIFT.get(method, 0.0)
    if method in ("ours", "apt"):
        v += RULE_DELTA[rule]
    return v


def eval_metrics(method: str, seed: int, multihead: bool, teacher_bonus: float = 0.0, transfer: float = 80.0,
                 retention=None) -> dict:
    rules = list(RULE_DELTA) if multihead else ["ours"]
    suites = {}
    for s in SUITES:
        agg = {"accuracy": {r: acc(method, s, seed, r, teacher_bonus) for r in rules}}
        if multihead:
            agg["fcorrect"] = {r: (0.6 if s == "clean" else 0.7) + 0.01 * i for i, r in enumerate(["ours", "no_kld", "no_uncertainty", "max_logit"])}
        if s in ("c", "objectnet_c"):
            agg["by_severity"] = {str(k): {"accuracy": {r: acc(method, s, seed, r, teacher_bonus) + 6 - 3 * k for r in rules}}
                                  for k in (1, 2, 3)}  # mean over severities 1–3 = the suite accuracy
        suites[s] = agg
    m = {"headline_rule": "ours", "suites": suites, "cost": {"gflops_plain": 0.1, "gflops_ours": 0.103, "overhead": 0.03},
         "transfer": transfer, "retention": retention,
         "fcorrect_clean": 0.6 if multihead else None, "fcorrect_shifted": 0.7 if multihead else None}
    m.update({s: suites[s]["accuracy"]["ours"] for s in SUITES})
    return m


def write_synthetic(root: Path, seeds=SEEDS, students=("resnet56_cifar", "efficientnet_lite0")) -> Path:
    """Records of every stage under root (results/metrics layout); returns root."""
    root = Path(root)
    grid = {"resnet56_cifar": ["resnet20_cifar"], "efficientnet_lite0": ["resnet20_cifar", "resnet56_cifar"]}
    students = {s: grid[s] for s in students}
    bonus = {"resnet20_cifar": 0.0, "resnet56_cifar": 1.0}
    for student, teachers in students.items():
        lp = student == "efficientnet_lite0"
        retention = 70.0 if lp else None
        baselines = ["original", "e2e", "wise_e2e_0.5", "vpt"] + (["linear_probe"] if lp else [])
        for method in baselines:
            run_method, variant = method, None  # as commands/baseline.py: method wise_e2e_<α>, no variant
            scheme = "augmix" if method in ("e2e", "wise_e2e_0.5", "vpt") else None  # training records only
            stem = f"{student}_{method}_s0"
            transfer = {"e2e": 75.0, "wise_e2e_0.5": 78.0}.get(method, 80.0)
            ret = None if retention is None else retention - (6.0 if method == "e2e" else 0.0)
            write_record(root / "baselines" / method / f"{stem}.json", make_record(
                "baselines", method=run_method, variant=variant, student=student, scheme=scheme, seed=0, params_hash="b",
                metrics={"clean": acc(method, "clean", 0)},
                timing={"train_s": COST[method] * 1000, "images_seen": 1000}))
            ev_method = "pretrained" if method == "original" else run_method
            ev_stem = student if method == "original" else stem
            write_record(root / "evaluate" / method / f"{ev_stem}.json", make_record(
                "evaluate", method=ev_method, variant=variant, student=student, seed=0, params_hash="e",
                metrics=eval_metrics(method, 0, False, transfer=transfer, retention=ret), flops=0.1e9))
        for teacher in teachers:
            for scheme in (SCHEME, "pixmix"):
                sb = bonus[teacher] + (0.5 if scheme == "pixmix" else 0.0)
                for variant, method in (("full", "ours"), ("no_kd", "apt")):
                    if scheme == "pixmix" and variant == "no_kd":
                        continue
                    for seed in seeds:
                        stem = f"{student}_{teacher}_{scheme}_{variant}_s{seed}"
                        run = dict(student=student, teacher=teacher, scheme=scheme, variant=variant)
                        write_record(root / "distill" / f"{stem}.json", make_record(
                            "distill", method=method, seed=seed, params_hash="d", **run,
                            metrics={"val_acc_clean": 90.0}, timing={"train_s": COST[method] * 1000, "images_seen": 1000}))
                        b = sb if method == "ours" else 0.0
                        write_record(root / "evaluate" / "students" / f"{stem}.json", make_record(
                            "evaluate", method="ours", seed=0, params_hash="e", **run,  # eval seed 0: training seed from the stem
                            metrics=eval_metrics(method, seed, True, b, retention=retention), flops=0.103e9))
    for scheme in (SCHEME, "pixmix"):
        write_record(root / "teachers" / f"resnet20_cifar_{scheme}_s0.json", make_record(
            "teachers", method="robustify_teacher", teacher="resnet20_cifar", scheme=scheme, student="resnet56_cifar",
            seed=0, params_hash="t", metrics={"clean": 0.9, "c_mean": 0.6 if scheme == SCHEME else 0.62},
            timing={"train_s": 3.0, "images_seen": 1000}))
    return root
