"""Evaluate one model on a set of suites: load any checkpoint kind behind the multi-head interface,
run the one-pass evaluator per dataset (reusing per-sample files already written for the same model
and settings), apply every selection rule, aggregate, probe transfer/retention, count FLOPs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError, DataError
from .onepass import OnePass, SingleHeadModel, deterministic_part, load_onepass, run_onepass, save_onepass
from .selection import RULES, complementarity, dataset_metrics, diagnostics, is_multihead, routing_auroc

log = logging.getLogger("robustify.evaluate")

RUN_FIELDS = ("student", "teacher", "scheme", "method", "variant")


@dataclass
class LoadedModel:
    model: nn.Module
    student: str  # registered model name
    image_size: int
    model_id: str
    source: str  # checkpoint path or 'pretrained:<name>'
    sha256: Optional[str] = None
    run: dict = field(default_factory=dict)  # record run fields (student, teacher, scheme, method, variant)
    inference: Optional[Callable] = None  # deterministic part, frozen or eager (built by inference_fn)
    shared: Optional[object] = None  # SharedTrunk: trunk outputs shared with other students (evaluate.share_trunk)

    def describe(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "student": self.student, "image_size": self.image_size}

    def preprocess(self):
        from ..models import Preprocess

        return Preprocess.for_model(self.student, self.image_size)


def load_model(checkpoint: Optional[str], pretrained: Optional[str], params) -> LoadedModel:
    """A distilled student, a linear-probe head, a single-head checkpoint or a pretrained registry model."""
    from ..io import sha256_file
    from ..models.registry import create_model, get_spec, read_checkpoint

    if pretrained:
        spec = get_spec(pretrained)
        model = create_model(pretrained, pretrained=True, weights=params.models.weights.get(pretrained))
        size = params.models.image_size.get(pretrained, spec.image_size)
        return LoadedModel(single_head(model, pretrained, params), pretrained, size, pretrained, f"pretrained:{pretrained}",
                           run={"student": pretrained, "method": "pretrained"})
    path = Path(checkpoint)
    obj = read_checkpoint(path, "model")
    sha = sha256_file(path)
    if obj.get("kind") == "linear_probe" or ("classifier" in obj and "student" in obj and "state" not in obj):
        from ..models.heads import load_linear_probe

        student = obj.get("student")
        spec = get_spec(student)
        base = create_model(student, pretrained=True, weights=params.models.weights.get(student))
        clf, size = load_linear_probe(str(path), int(base.num_features), student)
        size = size or params.models.image_size.get(student, spec.image_size)
        method = str(obj.get("method", "linear_probe"))  # zero-shot heads (robustify baseline) share the format
        return LoadedModel(single_head(base, student, params, clf), student, size, f"{student}_{method}", str(path), sha,
                           run={"student": student, "method": method})
    if obj.get("kind") == "vpt":  # prompt-tuned baseline: the prompt module is part of the model
        from ..train.vpt import load as load_vpt

        model, obj = load_vpt(path, obj)
        meta = obj.get("meta", {})
        run = {k: meta.get(k) for k in RUN_FIELDS if meta.get(k) is not None}
        return LoadedModel(SingleHeadModel(model), obj["student"], int(obj["image_size"]), path.stem, str(path), sha,
                           run={"method": "vpt", **run, "student": obj["student"]})
    if "meta" in obj and "state" in obj:
        from ..train.distill import load_student

        model, meta = load_student(path)
        run = {k: meta.get(k) for k in RUN_FIELDS if meta.get(k) is not None}
        run.setdefault("student", meta["student"])
        run.setdefault("method", "ours")
        return LoadedModel(model, meta["student"], int(meta.get("image_size") or get_spec(meta["student"]).image_size),
                           path.stem, str(path), sha, run=run)
    state = obj.get("state_dict", obj.get("model"))
    name = obj.get("student") if isinstance(obj.get("student"), str) else obj.get("teacher")
    if isinstance(state, dict) and isinstance(name, str):
        # a whole single-head model: {'student', 'state_dict'} (baselines) or a robust teacher {'teacher', 'scheme', 'model'}
        from ..models.registry import load_state_checked

        student = name
        spec = get_spec(student)
        head = state.get(_classifier_key(create_model(student)) + ".weight")
        model = create_model(student, pretrained=False, num_classes=int(head.shape[0]) if head is not None else None)
        load_state_checked(model, state, str(path), student)
        meta = obj.get("meta", {}) if isinstance(obj.get("meta"), dict) else {}
        run = {k: (meta.get(k) or obj.get(k)) for k in RUN_FIELDS if (meta.get(k) or obj.get(k)) is not None}
        if "student" not in obj:
            run.setdefault("method", "teacher")
        else:
            run.setdefault("student", student)
        size = int(obj.get("image_size") or meta.get("image_size") or params.models.image_size.get(student, spec.image_size))
        return LoadedModel(SingleHeadModel(model.eval()), student, size, path.stem, str(path), sha, run=run)
    raise CheckpointError(f"{path}: not a model checkpoint robustify knows (distilled student, linear-probe head, "
                          "robust teacher, or {'student', 'state_dict'}); pass a file written by robustify")


# families whose cut model gives the uncut one's outputs and MC-dropout masks exactly (tests/test_trunk_share.py);
# a ViT's MC passes switch on every dropout module of the model, not only its head's
SPLIT_FAMILIES = ("cifar_resnet", "efficientnet")


def single_head(model: nn.Module, student: str, params, classifier: Optional[nn.Module] = None) -> nn.Module:
    """A pretrained `student` (with `classifier` in place of its own, e.g. a linear probe) behind the
    evaluation interface. Where its distilled students share their trunk outputs (evaluate.share_trunk,
    the student in models.students), it is cut at their trunk and reads those outputs too: one trunk
    pass per image less for the whole run (ResNet-56's original: 115 → 21 CPU-s)."""
    from ..models.registry import get_spec
    from ..models.student import SplitSingleHead

    if classifier is not None:
        model.reset_classifier(classifier.out_features)
        model.get_classifier().load_state_dict(classifier.state_dict())
    k = params.distill.n_tunable_blocks.get(student)
    family = get_spec(student).family
    if params.evaluate.share_trunk and student in params.models.students and k is not None and family in SPLIT_FAMILIES:
        return SplitSingleHead(model.eval(), family, k)
    return SingleHeadModel(model)


def _classifier_key(model: nn.Module) -> str:
    clf = model.get_classifier()
    return next(n for n, m in model.named_modules() if m is clf)


# ---------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    metrics: dict
    artifacts: dict


def _file_name(dataset: str) -> str:
    return dataset.replace("/", "__") + ".npz"


def _cache_key(loaded: LoadedModel, cfg, dataset: str) -> str:
    return "|".join(str(v) for v in (loaded.source, loaded.sha256, loaded.image_size, dataset, cfg.mc_passes,
                                      cfg.dropout_p, cfg.seed, cfg.per_class, loaded.shared is not None))


def inference_fn(loaded: LoadedModel, cfg):
    """The model's deterministic part (trunk → pre-logits), frozen once per model when evaluate.freeze."""
    if loaded.inference is None:
        from ..models.frozen import InferenceGraph

        fn = deterministic_part(loaded.model)
        loaded.inference = InferenceGraph(loaded.model.eval(), fn, loaded.model_id) if cfg.freeze else fn
    return loaded.inference


def _reusable(path: Path, key: str) -> Optional[OnePass]:
    """The per-dataset file at `path` if it was written for the same model and settings (`key`)."""
    if path.is_file():
        try:
            op = load_onepass(path)
            if op.meta.get("key") == key:
                return op
        except DataError:
            pass
    return None


def onepass_for(loaded: LoadedModel, es, cfg, out_dir: Path, preprocess,
                reusable: Optional[OnePass] = None) -> tuple[OnePass, Path, bool]:
    """The OnePass of one dataset: `reusable` (out_dir's file, written for the same model and settings), or run."""
    path = out_dir / _file_name(es.name)
    if reusable is not None:
        return reusable, path, True
    if loaded.shared is not None:  # trunk outputs in, the rest of the deterministic part after them
        batches, prep, pre = loaded.shared.batches(es), (lambda z: z), loaded.shared.rest
    else:
        batches, prep, pre = es.batches(cfg.batch_size), preprocess, inference_fn(loaded, cfg)
    op = run_onepass(loaded.model, prep, batches, cfg.mc_passes, es.num_classes, project=es.project,
                     dropout_p=cfg.dropout_p, seed=cfg.seed, total=es.size, desc=es.name, pre=pre)
    op.meta.update(key=_cache_key(loaded, cfg, es.name), dataset=es.name, shifted=es.shifted)
    save_onepass(path, op, cfg.store_probs)
    return op, path, False


def _mean_over(rows: Sequence[dict], group: str) -> dict:
    keys = rows[0].get(group, {}).keys() if rows else []
    return {k: float(np.mean([r[group][k] for r in rows])) for k in keys if all(k in r.get(group, {}) for r in rows)}


def aggregate_suite(datasets: dict[str, dict], sets) -> dict:
    """Suite mean (unweighted over its datasets, as ImageNet-C's mean), plus per severity and corruption."""
    rows = [datasets[es.name] for es in sets]
    out = {"datasets": len(rows), "n": sum(r["n"] for r in rows), "accuracy": _mean_over(rows, "accuracy")}
    for group in ("fcorrect", "robust_share", "complementarity", "routing_auroc"):
        if rows and all(group in r for r in rows):
            out[group] = _mean_over(rows, group)
    tagged = [(es.tags, datasets[es.name]) for es in sets if "severity" in es.tags]
    if tagged:
        for tag, key in (("severity", "by_severity"), ("corruption", "by_corruption")):
            out[key] = {}
            for value in sorted({t[tag] for t, _ in tagged}, key=lambda v: (isinstance(v, str), v)):
                sub = [m for t, m in tagged if t[tag] == value]
                entry = {"accuracy": _mean_over(sub, "accuracy")}
                if all("fcorrect" in m for m in sub):
                    entry["fcorrect"] = _mean_over(sub, "fcorrect")
                out[key][str(value)] = entry
    return out


def evaluate_model(loaded: LoadedModel, suites: Sequence[str], cfg, params, out_dir: Path,
                   data: Sequence[str] = (), classes: Sequence[str] = ()) -> EvalResult:
    from ..device import place
    from .suites import build_suites, user_set

    place(loaded.model)
    preprocess = loaded.preprocess()
    sets = build_suites(suites, cfg, params.data.root, loaded.image_size)
    if cfg.share_trunk and loaded.shared is None:
        from .trunk_share import SharedTrunk, has_frozen_trunk

        if has_frozen_trunk(loaded.model):
            loaded.shared = SharedTrunk(Path(params.data.root) / "cache" / "eval_trunk", loaded.model, preprocess,
                                        loaded.image_size, cfg.batch_size, cfg.freeze, loaded.model_id)
    if data:
        sets["user"] = [user_set(p, classes, loaded.image_size, cfg.per_class) for p in data]
        names = [es.name for es in sets["user"]]
        if len(set(names)) != len(names):
            raise ConfigError(f"--data files share a name {names}; give each dataset a distinct file name")
    every = [es for members in sets.values() for es in members]
    reusable = {es.name: _reusable(out_dir / _file_name(es.name), _cache_key(loaded, cfg, es.name)) for es in every}
    if loaded.shared is not None:  # trunk outputs of the datasets still to evaluate, split with concurrent jobs
        loaded.shared.prepare([es for es in every if reusable[es.name] is None])
    datasets: dict[str, dict] = {}
    artifacts: dict = {"onepass": {}, "model": loaded.describe()}
    reference: Optional[OnePass] = None  # first in-distribution dataset: the negatives of the routing AUROC
    pending: list = []  # shifted datasets seen before it (AUROC filled in later)
    for suite, members in sets.items():
        for es in members:
            op, path, reused = onepass_for(loaded, es, cfg, out_dir, preprocess, reusable[es.name])
            m = dataset_metrics(op, es.shifted, cfg.beta)
            m.update(suite=suite, **es.tags)
            if is_multihead(op):
                m["complementarity"] = complementarity(op)
                if not es.shifted and reference is None:
                    reference = op
                    for name, path_ in pending:
                        datasets[name]["routing_auroc"] = routing_auroc(reference, load_onepass(path_), cfg.beta)
                elif es.shifted and reference is not None:
                    m["routing_auroc"] = routing_auroc(reference, op, cfg.beta)
                elif es.shifted:
                    pending.append((es.name, path))
            datasets[es.name] = m
            artifacts["onepass"][es.name] = str(path)
            log.info("%s%s: %s", es.name, " (reused)" if reused else "",
                     ", ".join(f"{r} {m['accuracy'][r]:.2f}" for r in ("ours", "clean", "robust", "oracle") if r in m["accuracy"]))
    if loaded.shared is not None:
        sh = loaded.shared
        artifacts["shared_trunk"] = {"dir": str(sh.dir), "fingerprint": sh.fingerprint, "hits": sh.hits, "misses": sh.misses}
        log.info("shared trunk %s: %d datasets read, %d computed", sh.dir, sh.hits, sh.misses)
    metrics: dict = {"rules": list(RULES), "beta": cfg.beta, "mc_passes": cfg.mc_passes, "datasets": datasets,
                     "suites": {s: aggregate_suite(datasets, members) for s, members in sets.items()},
                     "diagnostics": diagnostics(datasets) if datasets else {}}
    probes: dict = {}
    if "transfer" in suites:
        from .transfer import pacs7_probe

        probes["transfer"] = {f"pacs7_{cfg.transfer_domain}": pacs7_probe(
            loaded.model, preprocess, cfg.transfer_domain, cfg.transfer_test_fraction, cfg.transfer_weight_decay,
            cfg.transfer_max_iter, cfg.seed, cfg.batch_size)}
    if "retention" in suites:
        from .transfer import imagenet_retention, original_classifier

        clf = original_classifier(loaded.student, params.models.weights.get(loaded.student))
        if clf is None:
            log.info("retention skipped: %s has no ImageNet classifier", loaded.student)
        else:
            probes["retention"] = {"imagenet_samples": imagenet_retention(loaded.model, preprocess, clf, cfg.batch_size)}
    metrics["probes"] = probes
    metrics["cost"] = cost(loaded, cfg.mc_passes)
    metrics.update(headline(metrics))
    return EvalResult(metrics, artifacts)


HEADLINE_RULE = "ours"


def headline(metrics: dict) -> dict:
    """Flat scalars the tables read: accuracy (%) of the `ours` rule per suite (the model's only head for
    single-head models), `transfer` (PACS-7 probe %), `retention` (ImageNet top-1 %), mean Fcorrect."""
    out: dict = {"headline_rule": HEADLINE_RULE}
    for suite, agg in metrics["suites"].items():
        out[suite] = agg["accuracy"].get(HEADLINE_RULE)
    transfer = metrics["probes"].get("transfer")
    out["transfer"] = next(iter(transfer.values()))["accuracy"] if transfer else None
    retention = metrics["probes"].get("retention")
    out["retention"] = retention["imagenet_samples"]["top1"] if retention else None
    for group, flag in (("fcorrect_clean", False), ("fcorrect_shifted", True)):
        rows = [m["fcorrect"][HEADLINE_RULE] for m in metrics["datasets"].values() if m["shifted"] == flag and "fcorrect" in m]
        out[group] = float(np.mean(rows)) if rows else None
    return out


def cost(loaded: LoadedModel, passes: int) -> dict:
    from .flops import inference_flops

    x = torch.zeros(1, 3, loaded.image_size, loaded.image_size, device=next(loaded.model.parameters()).device)
    return inference_flops(loaded.model, x, passes)
