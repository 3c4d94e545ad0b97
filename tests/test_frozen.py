"""Frozen inference graphs (evaluate.freeze, distillation caches): same outputs as eager, eager fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from robustify.evaluate.onepass import deterministic_part, iterate_arrays, run_onepass
from robustify.models import Preprocess
from robustify.models.frozen import InferenceGraph, freeze_for_inference
from robustify.models.student import create_student


def _student():
    torch.manual_seed(0)
    return create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.3, pretrained=False).eval()


def test_frozen_graph_matches_eager_and_is_a_graph():
    model = _student()
    fn = deterministic_part(model)
    x = torch.randn(6, 3, 32, 32)
    run = freeze_for_inference(model, fn, x)
    assert run is not fn  # really frozen, not the fallback
    for a, b in zip(run(x), fn(x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    x5 = torch.randn(5, 3, 32, 32)  # another shape (a dataset's last batch) runs eager: exactly eager
    for a, b in zip(run(x5), fn(x5)):
        assert torch.equal(a, b)


class _Untraceable(nn.Module):
    def forward(self, x):
        return {"y": x * 2, "note": "not a tensor"}  # a trace cannot output a string


def test_untraceable_module_stays_eager():
    m = _Untraceable().eval()
    assert freeze_for_inference(m, m, torch.ones(2, 3)) is m


def test_graph_that_disagrees_with_eager_is_not_used(monkeypatch):
    model = _student()
    fn = deterministic_part(model)
    monkeypatch.setattr(torch.jit, "freeze", lambda traced: (lambda x: tuple(t + 1 for t in traced(x))))
    assert freeze_for_inference(model, fn, torch.randn(4, 3, 32, 32)) is fn


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval-mode"):
        freeze_for_inference(nn.BatchNorm1d(3).train(), lambda x: x, torch.ones(2, 3))


def test_onepass_frozen_equals_eager():
    model = _student()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 40)
    pre = Preprocess.for_model("resnet8_cifar", 32)
    a = run_onepass(model, pre, iterate_arrays(x, y, 16), 5, 10, seed=3)
    graph = InferenceGraph(model, deterministic_part(model))
    b = run_onepass(model, pre, iterate_arrays(x, y, 16), 5, 10, seed=3, pre=graph)
    assert graph.frozen and graph.shape == (16, 3, 32, 32)  # 16, 16, then a last batch of 8 run eager
    for k in a.arrays:
        if k.startswith("pred_"):
            assert np.array_equal(a.arrays[k], b.arrays[k]), k
        else:
            np.testing.assert_allclose(a.arrays[k], b.arrays[k], rtol=1e-3, atol=1e-5, err_msg=k)
