"""Selection rules, Fcorrect and the u/KL math on hand-built probability arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustify.evaluate.onepass import OnePass, summarize
from robustify.evaluate.selection import CANDIDATES, RULES, dataset_metrics, diagnostics, fcorrect, select


def _op(y, preds, u, kl, maxp=None) -> OnePass:
    """OnePass from per-head lists; head order clean, combined, robust."""
    arrays = {}
    for i, h in enumerate(("clean", "combined", "robust")):
        arrays[f"pred_{h}"] = np.asarray(preds[i])
        arrays[f"u_{h}"] = np.asarray(u[i], dtype=np.float32)
        arrays[f"kl_{h}"] = np.asarray(kl[i], dtype=np.float32)
        arrays[f"maxp_{h}"] = np.asarray(maxp[i] if maxp else np.full(len(y), 0.5), dtype=np.float32)
    return OnePass(("clean", "combined", "robust"), np.asarray(y), arrays)


# 4 samples: 0,1 clean-looking (clean head certain), 2,3 shifted-looking (robust head certain)
Y = [0, 1, 2, 3]
PREDS = [[0, 1, 9, 9],   # clean head: right on 0,1
         [0, 9, 2, 9],   # combined
         [9, 9, 2, 3]]   # robust head: right on 2,3
U = [[0.01, 0.01, 0.30, 0.30],
     [0.05, 0.05, 0.05, 0.05],
     [0.20, 0.20, 0.02, 0.02]]
KL = [[0.0, 0.0, 0.5, 0.5],
      [0.0, 0.0, 0.0, 0.0],
      [0.4, 0.4, 0.0, 0.0]]


def test_registry_names_and_order():
    assert list(RULES) == ["ours", "no_kld", "no_uncertainty", "max_logit", "clean", "robust", "combined", "oracle"]
    assert CANDIDATES == ("clean", "robust")


def test_ours_routes_each_sample_to_the_confident_head():
    sel = select(_op(Y, PREDS, U, KL), "ours")
    assert sel.choice.tolist() == [0, 0, 1, 1]
    assert (sel.pred == np.asarray(Y)).all()


def test_beta_trades_uncertainty_against_kl():
    # sample where u prefers clean (0.10 < 0.12) but KL to combined prefers robust (0.0 vs 0.5)
    op = _op([0], [[0], [1], [1]], [[0.10], [0.0], [0.12]], [[0.5], [0.0], [0.0]])
    assert select(op, "no_kld").choice.tolist() == [0]          # u only → clean
    assert select(op, "no_uncertainty").choice.tolist() == [1]  # KL only → robust
    assert select(op, "ours", beta=1.0).choice.tolist() == [1]  # 0.60 vs 0.12 → robust
    assert select(op, "ours", beta=0.01).choice.tolist() == [0]  # 0.105 vs 0.12 → clean
    assert select(op, "ours", beta=0.0).choice.tolist() == select(op, "no_kld").choice.tolist()


def test_ties_go_to_clean_head():
    op = _op([0], [[0], [0], [1]], [[0.1], [0.1], [0.1]], [[0.2], [0.0], [0.2]], maxp=[[0.7], [0.7], [0.7]])
    for rule in ("ours", "no_kld", "no_uncertainty", "max_logit"):
        assert select(op, rule).choice.tolist() == [0], rule


def test_max_logit_picks_most_confident_candidate():
    maxp = [[0.9, 0.2], [0.99, 0.99], [0.3, 0.8]]  # combined is ignored even when highest
    op = _op([0, 1], [[0, 5], [7, 7], [4, 1]], [[0, 0]] * 3, [[0, 0]] * 3, maxp)
    sel = select(op, "max_logit")
    assert sel.choice.tolist() == [0, 1]
    assert sel.pred.tolist() == [0, 1]


def test_fixed_heads_and_oracle():
    op = _op(Y, PREDS, U, KL)
    acc = {r: float(np.mean(select(op, r).pred == np.asarray(Y))) for r in RULES}
    assert acc["clean"] == 0.5 and acc["robust"] == 0.5 and acc["combined"] == 0.5
    assert acc["oracle"] == 1.0
    # oracle when no head is right keeps a wrong answer
    none_right = _op([5], [[0], [1], [2]], [[0]] * 3, [[0]] * 3)
    assert select(none_right, "oracle").pred.tolist() != [5]


def test_fcorrect_definition():
    choice = np.array([0, 0, 1, 1, 1])
    assert fcorrect(choice, shifted=False) == pytest.approx(0.4)
    assert fcorrect(choice, shifted=True) == pytest.approx(0.6)


def test_dataset_metrics_clean_vs_shifted():
    op = _op(Y, PREDS, U, KL)
    clean = dataset_metrics(op, shifted=False)
    shifted = dataset_metrics(op, shifted=True)
    assert clean["accuracy"]["ours"] == 100.0 and clean["accuracy"]["clean"] == 50.0
    assert clean["fcorrect"]["ours"] == 0.5 and shifted["fcorrect"]["ours"] == 0.5
    assert clean["robust_share"]["ours"] == 0.5
    assert clean["kl"]["combined"] == 0.0
    assert clean["u"]["clean"] == pytest.approx(np.mean(U[0]))
    assert set(clean["fcorrect"]) == {"ours", "no_kld", "no_uncertainty", "max_logit"}
    d = diagnostics({"a": clean, "b": shifted})
    assert d["clean"]["n"] == 4 and d["shifted"]["kl"]["robust"] == pytest.approx(0.2)


def test_single_head_every_rule_is_that_head():
    op = OnePass(("single",), np.array([0, 1, 1]),
                 {"pred_single": np.array([0, 1, 0]), "u_single": np.zeros(3, np.float32),
                  "kl_single": np.zeros(3, np.float32), "maxp_single": np.ones(3, np.float32)})
    m = dataset_metrics(op, shifted=True)
    assert list(m["accuracy"].values()) == [pytest.approx(200 / 3)] * len(RULES)
    assert "fcorrect" not in m and "kl" not in m


def test_summarize_math_against_hand_computation():
    # T=2 passes, B=1, C=3; combined is the reference
    clean = torch.tensor([[[0.6, 0.3, 0.1]], [[0.8, 0.1, 0.1]]])
    comb = torch.tensor([[[0.5, 0.4, 0.1]], [[0.5, 0.4, 0.1]]])
    robust = torch.tensor([[[0.2, 0.7, 0.1]], [[0.4, 0.5, 0.1]]])
    s = summarize({"clean": clean, "combined": comb, "robust": robust})
    assert s["pred_clean"].tolist() == [0] and s["pred_robust"].tolist() == [1]
    assert s["u_clean"][0] == pytest.approx(0.1)  # std of (0.6, 0.8), ddof 0
    assert s["u_robust"][0] == pytest.approx(0.1)  # std of (0.7, 0.5)
    assert s["u_combined"][0] == pytest.approx(0.0)
    assert s["maxp_clean"][0] == pytest.approx(0.7)
    p, q = np.array([0.5, 0.4, 0.1]), np.array([0.7, 0.2, 0.1])
    assert s["kl_clean"][0] == pytest.approx(float(np.sum(p * np.log(p / q))), rel=1e-5)
    assert s["kl_combined"][0] == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(s["probs_robust"][0], [0.3, 0.6, 0.1], rtol=1e-6)


def test_auroc_and_routing_signals():
    from robustify.evaluate.selection import auroc, complementarity, routing_auroc

    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5
    clean = _op([0, 1], [[0, 1], [0, 1], [0, 0]], [[0.01, 0.02], [0, 0], [0.2, 0.3]], [[0.0, 0.0], [0, 0], [0.4, 0.4]])
    shifted = _op([2, 3], [[9, 9], [2, 3], [2, 3]], [[0.3, 0.4], [0, 0], [0.02, 0.01]], [[0.5, 0.6], [0, 0], [0.0, 0.0]])
    a = routing_auroc(clean, shifted)
    assert a["ours"] == 1.0 and a["u"] == 1.0 and a["kl"] == 1.0
    uninformative = _op([2, 3], [[9, 9], [2, 3], [2, 3]], [[0.3, 0.4], [0, 0], [0.02, 0.01]], [[0.0, 0.0], [0, 0], [0.4, 0.4]])
    assert routing_auroc(clean, uninformative)["kl"] == 0.5  # KL identical on both: no information
    assert complementarity(clean) == {"clean_only": 0.5, "robust_only": 0.0, "both": 0.5}
