"""DESIGN.md §1 losses on hand-made logits: values, variants, and which head learns from which data."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robustify.train.losses import LossWeights, distill_loss, kd_per_sample


def _logits(*rows):
    return torch.tensor(rows, dtype=torch.float32, requires_grad=True)


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _softmax(v, tau=1.0):
    e = [math.exp(x / tau) for x in v]
    return [x / sum(e) for x in e]


def test_kd_is_tau_squared_kl_teacher_to_student():
    t, s, tau = [2.0, 0.0, -1.0], [0.5, 0.3, 0.1], 2.0
    expected = tau**2 * _kl(_softmax(t, tau), _softmax(s, tau))
    got = kd_per_sample(torch.tensor([t]), torch.tensor([s]), tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_full_loss_value_matches_the_formula():
    w = LossWeights(alpha=0.3, tau=2.0, gamma=0.5, lam=2.0)
    y = torch.tensor([0])
    c, m1 = [1.0, 0.0, -1.0], [0.2, 0.1, 0.0]
    r, m2 = [0.0, 1.0, 0.0], [0.3, -0.2, 0.4]
    to, ts = [3.0, 0.0, 0.0], [0.0, 0.0, 2.0]
    ce = lambda v: -math.log(_softmax(v)[0])  # noqa: E731
    kd = lambda t, s: w.tau**2 * _kl(_softmax(t, w.tau), _softmax(s, w.tau))  # noqa: E731
    head = lambda v, t: w.alpha * ce(v) + (1 - w.alpha) * kd(t, v)  # noqa: E731
    expected = head(c, to) + w.gamma * head(m1, to) + w.lam * (head(r, ts) + w.gamma * head(m2, ts))
    total, parts = distill_loss({"clean": _logits(c), "combined": _logits(m1)}, {"robust": _logits(r), "combined": _logits(m2)},
                                y, y, torch.tensor([to]), torch.tensor([ts]), w)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert parts["loss"] == pytest.approx(expected, rel=1e-5)


def test_no_kd_is_cross_entropy_only_and_ignores_the_teacher():
    w = LossWeights(variant="no_kd", gamma=1.0, lam=1.0)
    y = torch.tensor([1, 2])
    clean = {"clean": torch.randn(2, 10), "combined": torch.randn(2, 10)}
    aug = {"robust": torch.randn(2, 10), "combined": torch.randn(2, 10)}
    total, parts = distill_loss(clean, aug, y, y, None, None, w)
    expected = sum(F.cross_entropy(v, y) for v in (*clean.values(), *aug.values()))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["kd_robust_head"] == 0.0 and not w.uses_teacher


def test_teacher_confidence_weighting():
    w = LossWeights(alpha=0.0, kd_weighting="teacher_confidence")
    t = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    s = torch.zeros(2, 3)
    y = torch.tensor([0, 0])
    _, parts = distill_loss({}, {"robust": s, "combined": s}, y, y, None, t, w)
    conf = F.softmax(t, 1).amax(1)
    expected = (kd_per_sample(t, s, 1.0) * conf).mean().item()
    assert parts["kd_robust_head"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("variant", ["full", "no_kd"])
def test_each_head_learns_only_from_its_data(variant):
    """Clean data reaches clean + combined heads only; augmented data robust + combined only."""
    torch.manual_seed(0)
    w = LossWeights(variant=variant)
    y = torch.tensor([0, 3])
    t = torch.randn(2, 10)

    def heads():
        return {h: torch.randn(2, 10, requires_grad=True) for h in ("clean", "combined", "robust")}

    hc, ha = heads(), heads()
    total, _ = distill_loss({"clean": hc["clean"], "combined": hc["combined"]}, {}, y, y, t, None, w)
    total.backward()
    assert hc["clean"].grad.abs().sum() > 0 and hc["combined"].grad.abs().sum() > 0 and hc["robust"].grad is None
    total, _ = distill_loss({}, {"robust": ha["robust"], "combined": ha["combined"]}, y, y, None, t, w)
    total.backward()
    assert ha["robust"].grad.abs().sum() > 0 and ha["combined"].grad.abs().sum() > 0 and ha["clean"].grad is None


def test_model_level_gradient_routing():
    """Through the real student and training step: a clean-only batch never touches the robust head."""
    from robustify.models.registry import create_model, get_spec
    from robustify.models.student import MultiHeadStudent, split_model
    from robustify.train.distill import step_loss

    torch.manual_seed(0)
    m = create_model("resnet8_cifar", num_classes=10)
    s = MultiHeadStudent(*split_model(m, "cifar_resnet"), n_tunable_blocks=2, head_depth=1, dropout_p=0.1).train()
    z = s.forward_trunk(torch.randn(4, 3, 32, 32))
    y = torch.tensor([0, 1, 2, 3])
    w = LossWeights(gamma=0.0, lam=1.0)  # γ=0: the combined head gets nothing; isolates clean vs robust
    t = torch.randn(4, 10)
    loss, _ = step_loss(s, z, z, y, t, t, w)
    loss.backward()
    for h in ("clean", "robust"):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in s.heads[h].classifier.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in s.heads["combined"].parameters())
    # λ=0: the augmented half contributes nothing, so the robust head gets no gradient
    s.zero_grad(set_to_none=True)
    loss, _ = step_loss(s, z, z, y, t, t, LossWeights(lam=0.0))
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in s.heads["robust"].parameters())
    assert s.heads["clean"].classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in s.trunk.parameters())
    _ = get_spec


def test_teacher_correct_weighting_drops_kd_where_the_teacher_is_wrong():
    w = LossWeights(alpha=0.0, kd_weighting="teacher_correct")
    t = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    s = torch.zeros(2, 3)
    y = torch.tensor([0, 0])  # the teacher is right on sample 0 only
    _, parts = distill_loss({}, {"robust": s, "combined": s}, y, y, None, t, w)
    expected = kd_per_sample(t[:1], s[:1], 1.0).item() / 2
    assert parts["kd_robust_head"] == pytest.approx(expected, rel=1e-5)
