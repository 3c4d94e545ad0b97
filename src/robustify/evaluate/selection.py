"""Head-selection rules, Fcorrect and the u/KL diagnostics, all computed from one OnePass.

Rules (the registry `RULES`, in report order) map a OnePass to per-sample predictions and, where the
rule routes between heads, the chosen head per sample:

- `ours`: argmin_h u_h + β·KL(p̄_combined ‖ p̄_h) over h ∈ {clean, robust} (β=1; ties → clean)
- `no_kld`: the same with β=0 (uncertainty only)
- `no_uncertainty`: KL only
- `max_logit`: the candidate head with the highest max probability (ties → clean)
- `clean`, `robust`, `combined`: one head always
- `oracle`: right when any of the three heads is right (an upper bound of per-image selection)

`fcorrect`: the share of samples routed to the right head — clean on in-distribution data, robust on
shifted data (paper Table 7). A model with one head (baselines) has every rule equal to that head and
no Fcorrect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .onepass import OnePass

CANDIDATES = ("clean", "robust")  # the heads selection chooses between
REFERENCE = "combined"  # the head the KL term compares against


@dataclass(frozen=True)
class Selection:
    pred: np.ndarray  # per-sample predicted class
    choice: Optional[np.ndarray]  # per-sample index into CANDIDATES, or None when the rule does not route


def _scores_argmin(op: OnePass, u_weight: float, kl_weight: float) -> Selection:
    score = np.stack([u_weight * op.get("u", h) + kl_weight * op.get("kl", h) for h in CANDIDATES])
    choice = np.argmin(score, axis=0)  # first minimum: ties go to the clean head
    return Selection(_route(op, choice), choice)


def _route(op: OnePass, choice: np.ndarray) -> np.ndarray:
    preds = np.stack([op.get("pred", h) for h in CANDIDATES])
    return preds[choice, np.arange(len(choice))]


def _ours(op: OnePass, beta: float) -> Selection:
    return _scores_argmin(op, 1.0, beta)


def _no_kld(op: OnePass, beta: float) -> Selection:
    return _scores_argmin(op, 1.0, 0.0)


def _no_uncertainty(op: OnePass, beta: float) -> Selection:
    return _scores_argmin(op, 0.0, 1.0)


def _max_logit(op: OnePass, beta: float) -> Selection:
    conf = np.stack([op.get("maxp", h) for h in CANDIDATES])
    choice = np.argmax(conf, axis=0)
    return Selection(_route(op, choice), choice)


def _fixed(head: str) -> Callable[[OnePass, float], Selection]:
    def rule(op: OnePass, beta: float) -> Selection:
        return Selection(op.get("pred", head), np.full(len(op), CANDIDATES.index(head)) if head in CANDIDATES else None)

    return rule


def _oracle(op: OnePass, beta: float) -> Selection:
    pred = op.get("pred", REFERENCE).copy()
    for h in op.heads:
        right = op.correct(h)
        pred[right] = op.y[right]
    return Selection(pred, None)


RULES: dict[str, Callable[[OnePass, float], Selection]] = {
    "ours": _ours,
    "no_kld": _no_kld,
    "no_uncertainty": _no_uncertainty,
    "max_logit": _max_logit,
    "clean": _fixed("clean"),
    "robust": _fixed("robust"),
    "combined": _fixed("combined"),
    "oracle": _oracle,
}
ROUTING_RULES = ("ours", "no_kld", "no_uncertainty", "max_logit")


def is_multihead(op: OnePass) -> bool:
    return all(h in op.heads for h in CANDIDATES + (REFERENCE,))


def select(op: OnePass, rule: str, beta: float = 1.0) -> Selection:
    """Apply rule `rule` (a key of RULES); a single-head OnePass gives its one head for every rule."""
    if rule not in RULES:
        raise KeyError(f"unknown selection rule '{rule}'; rules: {', '.join(RULES)}")
    if not is_multihead(op):
        return Selection(op.get("pred", op.heads[0]), None)
    return RULES[rule](op, beta)


def fcorrect(choice: np.ndarray, shifted: bool) -> float:
    """Fraction of samples routed to the right head: robust on shifted data, clean otherwise."""
    target = CANDIDATES.index("robust" if shifted else "clean")
    return float(np.mean(choice == target))


def dataset_metrics(op: OnePass, shifted: bool, beta: float = 1.0) -> dict:
    """Accuracy (%) per rule, Fcorrect per routing rule, share routed to the robust head, mean u_h and KL per head."""
    out: dict = {"n": int(len(op)), "shifted": bool(shifted), "accuracy": {}}
    multi = is_multihead(op)
    if multi:
        out["fcorrect"], out["robust_share"] = {}, {}
    for name in RULES:
        sel = select(op, name, beta)
        out["accuracy"][name] = float(np.mean(sel.pred == op.y) * 100)
        if multi and name in ROUTING_RULES:
            out["fcorrect"][name] = fcorrect(sel.choice, shifted)
            out["robust_share"][name] = float(np.mean(sel.choice == CANDIDATES.index("robust")))
    out["u"] = {h: float(op.get("u", h).mean()) for h in op.heads}
    if multi:
        out["kl"] = {h: float(op.get("kl", h).mean()) for h in op.heads}
    return out


def diagnostics(per_dataset: dict[str, dict]) -> dict:
    """Mean u_h and KL per head over clean vs shifted datasets (sample-weighted), for the record."""
    out: dict = {}
    for group, flag in (("clean", False), ("shifted", True)):
        rows = [m for m in per_dataset.values() if m["shifted"] == flag]
        if not rows:
            continue
        n = sum(m["n"] for m in rows)
        out[group] = {"n": n}
        for kind in ("u", "kl"):
            if all(kind in m for m in rows):
                heads = rows[0][kind].keys()
                out[group][kind] = {h: sum(m[kind][h] * m["n"] for m in rows) / n for h in heads}
    return out


def complementarity(op: OnePass) -> dict:
    """Share of samples only the clean head gets right, only the robust head gets right, and both."""
    c, r = op.correct("clean"), op.correct("robust")
    return {"clean_only": float(np.mean(c & ~r)), "robust_only": float(np.mean(r & ~c)), "both": float(np.mean(c & r))}


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann–Whitney U / n_pos·n_neg)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([neg, pos]))
    n_neg, n_pos = len(neg), len(pos)
    return float((ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def routing_signals(op: OnePass, beta: float = 1.0) -> dict[str, np.ndarray]:
    """Per-sample 'route to robust' evidence of each rule's signal (higher = more robust-like)."""
    du = op.get("u", "clean") - op.get("u", "robust")
    dkl = op.get("kl", "clean") - op.get("kl", "robust")
    return {"ours": du + beta * dkl, "u": du, "kl": dkl, "max_logit": op.get("maxp", "robust") - op.get("maxp", "clean")}


def routing_auroc(clean: OnePass, shifted: OnePass, beta: float = 1.0) -> dict:
    """How well each signal tells shifted from in-distribution samples (0.5 = no information).

    A rule can only route shifted data to the robust head and clean data to the clean head as well as
    its signal separates the two; this says which term (u or KL) carries that information.
    """
    a, b = routing_signals(clean, beta), routing_signals(shifted, beta)
    return {k: auroc(a[k], b[k]) for k in a}
