"""Issue 7 study: do the heads specialise, and does KD beat no-KD? Validation split only.

    .venv/bin/python studies/distill_study.py prepare                 # eval sets (clean / views / corrupted val)
    .venv/bin/python studies/distill_study.py run NAME [key=value …]  # one run; appends a JSON line to OUT

Keys: variant, seed, k (n_tunable_blocks), d (head_depth), p (dropout), alpha, tau, gamma, lam, epochs, K
(views per image), lr, freeze_bn, teacher (checkpoint path or 'pretrained'). The student is ResNet-56
(main pair). The training views (scheme augmix_deepaugment, K sets) are made once with view seed 0 and
shared by all training seeds (the seed moves shuffling and dropout only) — to fit 2 shared cores.
Corrupted validation: 30 images per class × 15 corruptions × severities 1, 3, 5 (robustify.corruptions,
CIFAR table). Selection: MC dropout T=10 on the heads, s_h = u_h + β·KL(p̄_comb ‖ p̄_h), β=1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", "/work/shared/data")

from robustify.config import load_params  # noqa: E402
from robustify.data import cifar10, mirror  # noqa: E402
from robustify.models.preprocess import Preprocess  # noqa: E402
from robustify.models.registry import create_model  # noqa: E402
from robustify.models.student import create_student  # noqa: E402
from robustify.train import cache as C  # noqa: E402
from robustify.train.distill import DistillData, TrainSettings, train  # noqa: E402
from robustify.train.losses import LossWeights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "data" / "study"
OUT = STUDY / "runs.jsonl"
STUDENT, SCHEME = "resnet56_cifar", "augmix_deepaugment"
TEACHER = str(STUDY / "teachers" / "resnet20_cifar_augmix_deepaugment_s0.pt")
SEVERITIES = (1, 3, 5)
PER_CLASS_C = 30

params = load_params(ROOT / "params.yaml")
mirror.configure(params.data.mirror, params.data.cache)


def view_fn():
    from robustify.augment.views import AugmentSettings

    return C.default_view_fn(SCHEME, AugmentSettings.from_config(params.teachers))


def prepare() -> None:
    from robustify.train.teacher import corrupt_images, corruption_names

    path = STUDY / "val_sets.npz"
    if path.exists():
        return
    val = cifar10("val", params.data.val_per_class)
    small = val.head(PER_CLASS_C)
    names, engine = corruption_names()
    xs, ys, cs, ss = [], [], [], []
    t0 = time.time()
    for ci, c in enumerate(names):
        for s in SEVERITIES:
            xs.append(corrupt_images(small.x, c, s, seed=11))
            ys.append(small.y)
            cs.append(np.full(len(small.y), ci))
            ss.append(np.full(len(small.y), s))
    views = view_fn()(val.x, C.view_seed(0, 999))
    np.savez(path, x_clean=val.x, y_clean=val.y, x_views=views, x_c=np.concatenate(xs), y_c=np.concatenate(ys),
             c_idx=np.concatenate(cs), sev=np.concatenate(ss), names=np.array(names), engine=engine)
    print(f"prepared {path} in {time.time() - t0:.0f} s ({engine})")


def val_sets() -> dict:
    with np.load(STUDY / "val_sets.npz") as f:
        return {k: f[k] for k in f.files}


def trunk_z(student, pre, x: np.ndarray, key: str) -> torch.Tensor:
    path = STUDY / f"z_{key}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    z = C.batched(lambda b: student.forward_trunk(pre(b)), x, 256).astype(np.float16)
    np.save(path, z)
    return torch.from_numpy(z)


@torch.no_grad()
def mc_heads(student, z: torch.Tensor, T: int = 10) -> dict:
    """Per head: mean probs over T dropout passes and u = std of the predicted class's probability."""
    student.eval()
    out = {}
    hs = [student.forward_tunable(z[i:i + 512].float()) for i in range(0, len(z), 512)]
    torch.manual_seed(123)
    for name in ("clean", "combined", "robust"):
        head = student.heads[name]
        f = torch.cat([head.pre_logits(h) for h in hs])  # dropout sits before the classifier: only it is re-sampled
        det = head.classifier(f)
        passes = torch.stack([F.softmax(head.classifier(F.dropout(f, head.dropout_p, training=True)), 1) for _ in range(T)])
        pbar = passes.mean(0)
        pred = pbar.argmax(1)
        u = passes.gather(2, pred.view(1, -1, 1).expand(T, -1, 1)).squeeze(2).std(0)
        out[name] = {"det": det, "pbar": pbar, "u": u}
    return out


def head_report(mc: dict, y: torch.Tensor, shifted: bool) -> dict:
    acc = {h: float((mc[h]["det"].argmax(1) == y).float().mean() * 100) for h in mc}
    pc = mc["combined"]["pbar"].clamp_min(1e-8)
    kl = {h: (pc * (pc.log() - mc[h]["pbar"].clamp_min(1e-8).log())).sum(1) for h in ("clean", "robust")}
    s_clean = mc["clean"]["u"] + kl["clean"]
    s_rob = mc["robust"]["u"] + kl["robust"]
    pick_robust = s_rob < s_clean
    pred = torch.where(pick_robust, mc["robust"]["pbar"].argmax(1), mc["clean"]["pbar"].argmax(1))
    maxp_robust = mc["robust"]["pbar"].amax(1) > mc["clean"]["pbar"].amax(1)
    pred_maxp = torch.where(maxp_robust, mc["robust"]["pbar"].argmax(1), mc["clean"]["pbar"].argmax(1))
    okc, okr = mc["clean"]["det"].argmax(1) == y, mc["robust"]["det"].argmax(1) == y
    return {**{f"acc_{h}": v for h, v in acc.items()},
            "acc_selected": float((pred == y).float().mean() * 100),
            "acc_maxprob": float((pred_maxp == y).float().mean() * 100),
            "acc_oracle": float((okc | okr).float().mean() * 100),
            "fcorrect": float((pick_robust if shifted else ~pick_robust).float().mean()),
            "disagree": float((mc["clean"]["det"].argmax(1) != mc["robust"]["det"].argmax(1)).float().mean() * 100),
            "kl_clean": float(kl["clean"].mean()), "kl_robust": float(kl["robust"].mean()),
            "u_clean": float(mc["clean"]["u"].mean()), "u_robust": float(mc["robust"]["u"].mean())}


def run(name: str, **kw) -> dict:
    cfg = dict(variant="full", seed=0, k=3, d=1, p=0.1, alpha=0.5, tau=1.0, gamma=1.0, lam=1.0, epochs=3, K=3, lr=1e-3,
               freeze_bn=False, teacher=TEACHER, wd=0.0, bs=128, kdw="none", Kuse=0)
    for key, v in kw.items():
        cfg[key] = type(cfg[key])(v) if not isinstance(cfg[key], bool) else v in ("1", "true", "True", True)
    cache_dir = STUDY / "cache"
    train_ds = cifar10("train", params.data.val_per_class)
    views = C.build_views(cache_dir, train_ds.x, SCHEME, 0, cfg["K"], view_fn(), "study")
    pre = Preprocess.for_model(STUDENT)
    torch.manual_seed(cfg["seed"])
    student = create_student(STUDENT, n_tunable_blocks=cfg["k"], head_depth=cfg["d"], dropout_p=cfg["p"])
    trunk = C.build_trunk(cache_dir, student, pre, train_ds.x, train_ds.y, views, f"k{cfg['k']}", 256, "float16", STUDENT)
    w = LossWeights(cfg["alpha"], cfg["tau"], cfg["gamma"], cfg["lam"], cfg["variant"], cfg["kdw"])
    tfile = None
    if w.uses_teacher:
        if cfg["teacher"] == "pretrained":
            teacher, tkey = create_model("resnet20_cifar", pretrained=True), "pretrained"
        else:
            from robustify.train.teacher import load_teacher

            teacher, tkey = load_teacher(cfg["teacher"]), C.images_digest(np.frombuffer(Path(cfg["teacher"]).read_bytes(), np.uint8))
        tfile = C.build_teacher(cache_dir, teacher, Preprocess.for_model("resnet20_cifar"), views, tkey, 256, "resnet20_cifar")
    data = DistillData.from_arrays(trunk.arrays, None if tfile is None else tfile.arrays)
    if cfg["Kuse"]:  # use only the first Kuse view sets (K=1: the same view of each image every epoch)
        data.z_views = data.z_views[:cfg["Kuse"]]
        data.t_views = None if data.t_views is None else data.t_views[:cfg["Kuse"]]
    vs = val_sets()
    zs = {s: trunk_z(student, pre, vs[f"x_{s}"], f"{s}_k{cfg['k']}") for s in ("clean", "views", "c")}
    s = TrainSettings(cfg["epochs"], cfg["lr"], cfg["wd"], cfg["bs"], cfg["freeze_bn"])
    t0 = time.time()
    res = train(student, data, w, s, cfg["seed"], progress=False)
    train_s = time.time() - t0
    y = {"clean": torch.from_numpy(vs["y_clean"]), "views": torch.from_numpy(vs["y_clean"]), "c": torch.from_numpy(vs["y_c"])}
    rep = {sname: head_report(mc_heads(student, zs[sname]), y[sname], sname != "clean") for sname in zs}
    sev = torch.from_numpy(vs["sev"])
    mc_c = mc_heads(student, zs["c"])
    for sv in SEVERITIES:
        m = sev == sv
        sub = {h: {k2: v[m] for k2, v in d.items()} for h, d in mc_c.items()}
        rep[f"c{sv}"] = head_report(sub, y["c"][m], True)
    row = {"name": name, "cfg": {k2: v for k2, v in cfg.items() if k2 != "teacher"}, "teacher": Path(str(cfg["teacher"])).name,
           "train_s": train_s, "history_last": res["history"][-1], **rep}
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\n")
    c = rep["c"]
    print(f"{name}: C clean/comb/rob/sel/oracle {c['acc_clean']:.2f}/{c['acc_combined']:.2f}/{c['acc_robust']:.2f}/"
          f"{c['acc_selected']:.2f}/{c['acc_oracle']:.2f} Fc {c['fcorrect']:.2f}/{rep['clean']['fcorrect']:.2f} "
          f"clean {rep['clean']['acc_combined']:.2f} ({train_s:.0f} s)", flush=True)
    return row


def reference() -> None:
    """Original student and the teacher on the same validation sets."""
    from robustify.train.teacher import load_teacher

    vs = val_sets()
    models = {"resnet56_original": (create_model(STUDENT, pretrained=True), Preprocess.for_model(STUDENT)),
              "resnet20_original": (create_model("resnet20_cifar", pretrained=True), Preprocess.for_model("resnet20_cifar"))}
    if Path(TEACHER).exists():
        models["teacher"] = (load_teacher(TEACHER), Preprocess.for_model("resnet20_cifar"))
    row = {"name": "reference"}
    sev = vs["sev"]
    for n, (m, pre) in models.items():
        m.eval()
        acc = {}
        for sname in ("clean", "views", "c"):
            pred = C.batched(lambda b: m(pre(b)), vs[f"x_{sname}"], 256).argmax(1)
            yy = vs["y_c"] if sname == "c" else vs["y_clean"]
            acc[sname] = float((pred == yy).mean() * 100)
            if sname == "c":
                for sv in SEVERITIES:
                    acc[f"c{sv}"] = float((pred[sev == sv] == yy[sev == sv]).mean() * 100)
        row[n] = acc
        print(n, acc, flush=True)
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\n")


def table() -> None:
    """Mean ± std over seeds per configuration (name without its _s<seed> suffix)."""
    import re
    from collections import defaultdict

    groups = defaultdict(list)
    for line in OUT.read_text().splitlines():
        row = json.loads(line)
        if row["name"] == "reference":
            print("reference", {k: v for k, v in row.items() if k != "name"})
            continue
        groups[re.sub(r"_s\d+$", "", row["name"])].append(row)
    cols = [("c", "acc_clean"), ("c", "acc_combined"), ("c", "acc_robust"), ("c", "acc_selected"), ("c", "acc_maxprob"),
            ("c", "acc_oracle"), ("c", "fcorrect"), ("clean", "fcorrect"), ("c5", "acc_clean"), ("c5", "acc_robust"),
            ("clean", "acc_clean"), ("clean", "acc_robust"), ("views", "acc_clean"), ("views", "acc_robust"),
            ("c", "kl_clean"), ("c", "kl_robust"), ("clean", "kl_clean"), ("clean", "kl_robust")]
    print("config | n | seeds | " + " | ".join(f"{a}:{b}" for a, b in cols))
    for g, rows in groups.items():
        vals = []
        for a, b in cols:
            v = np.array([r[a][b] for r in rows])
            vals.append(f"{v.mean():.2f}±{v.std():.2f}" if len(v) > 1 else f"{v.mean():.2f}")
        seeds = ",".join(str(r["cfg"]["seed"]) for r in rows)
        print(f"{g} | {len(rows)} | {seeds} | " + " | ".join(vals))


if __name__ == "__main__":
    STUDY.mkdir(parents=True, exist_ok=True)
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare()
    elif cmd == "reference":
        reference()
    elif cmd == "table":
        table()
    elif cmd == "run":
        run(sys.argv[2], **dict(a.split("=", 1) for a in sys.argv[3:]))
    else:
        raise SystemExit(__doc__)
