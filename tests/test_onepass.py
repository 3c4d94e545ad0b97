"""One-pass evaluator: equals T explicit passes with the same dropout RNG, trunk runs once, file round trip,
single-head adapter, FLOPs overhead."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _eval_doubles import TinyStudent, identity_preprocess, random_images
from robustify.evaluate.flops import count_flops, inference_flops
from robustify.evaluate.onepass import SingleHeadModel, iterate_arrays, load_onepass, mc_probs, run_onepass, save_onepass

T = 7


def _explicit_passes(model, x, passes):
    """T complete forward passes (trunk + tunable + heads) with dropout on, the naive way."""
    out = {}
    for _ in range(passes):
        for n, logits in model.forward_heads(model.forward_tunable(model.forward_trunk(x)), mc=True).items():
            out.setdefault(n, []).append(torch.softmax(logits, -1))
    return {n: torch.stack(v) for n, v in out.items()}


@pytest.mark.parametrize("split", [True, False])
def test_onepass_equals_explicit_passes_with_same_rng(split):
    model = TinyStudent(split=split).eval()
    x = identity_preprocess(torch.from_numpy(random_images(12)[0]))
    torch.manual_seed(3)
    fast = mc_probs(model, x, T)
    torch.manual_seed(3)
    slow = _explicit_passes(model, x, T)
    for h in fast:
        torch.testing.assert_close(fast[h], slow[h])
    assert fast["clean"].shape == (T, 12, 10)
    assert not torch.allclose(fast["clean"][0], fast["clean"][1])  # dropout really was on


def test_real_student_onepass_equals_explicit_passes():
    student = pytest.importorskip("robustify.models.student")
    model = student.create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.3, pretrained=False).eval()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    fast = mc_probs(model, x, 5)
    torch.manual_seed(0)
    slow = _explicit_passes(model, x, 5)
    for h in slow:
        torch.testing.assert_close(fast[h], slow[h])


@pytest.mark.parametrize("split", [True, False])
def test_trunk_and_tunable_run_once_per_batch(split):
    model = TinyStudent(split=split)
    x, y = random_images(40)
    op = run_onepass(model, identity_preprocess, iterate_arrays(x, y, 16), T, 10)
    assert model.calls["trunk"] == 3 and model.calls["tunable"] == 3  # ceil(40/16) batches
    assert model.calls["heads"] == (0 if split else 3 * T)  # split heads: classifier-only re-sampling
    assert len(op) == 40 and op.heads == ("clean", "combined", "robust")
    assert (op.get("u", "clean") > 0).any()
    assert np.allclose(op.get("kl", "combined"), 0, atol=1e-6)


def test_run_is_deterministic_and_batch_size_free_of_rng_order():
    x, y = random_images(20)
    a = run_onepass(TinyStudent(), identity_preprocess, iterate_arrays(x, y, 8), T, 10, seed=5)
    b = run_onepass(TinyStudent(), identity_preprocess, iterate_arrays(x, y, 8), T, 10, seed=5)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_file_round_trip(tmp_path):
    x, y = random_images(10)
    op = run_onepass(TinyStudent(), identity_preprocess, iterate_arrays(x, y, 4), T, 10)
    op.meta["key"] = "abc"
    save_onepass(tmp_path / "d.npz", op)
    back = load_onepass(tmp_path / "d.npz")
    assert back.heads == op.heads and back.meta["key"] == "abc" and back.meta["passes"] == T
    np.testing.assert_array_equal(back.y, op.y)
    np.testing.assert_array_equal(back.get("pred", "robust"), op.get("pred", "robust"))
    assert back.get("probs", "clean").dtype == np.float16
    assert not list(tmp_path.glob(".*tmp"))


def test_single_head_adapter_has_zero_uncertainty():
    from robustify.models import create_model

    model = SingleHeadModel(create_model("resnet8_cifar"))
    x, y = random_images(6, size=32)
    op = run_onepass(model, identity_preprocess, iterate_arrays(x, y, 6), T, 10)
    assert op.heads == ("single",)
    assert np.all(op.get("u", "single") == 0)
    plain = model(identity_preprocess(torch.from_numpy(x))).argmax(1).numpy()
    np.testing.assert_array_equal(op.get("pred", "single"), plain)


def test_single_head_adapter_mc_switches_on_head_dropout_only():
    from robustify.models import create_model

    net = create_model("efficientnet_lite0")
    net.drop_rate = 0.5
    model = SingleHeadModel(net).eval()
    x = torch.randn(2, 3, 32, 32)
    h = model.forward_tunable(model.forward_trunk(x))
    torch.testing.assert_close(model.forward_heads(h)["single"], model.forward_heads(h)["single"])
    assert not torch.allclose(model.forward_heads(h, mc=True)["single"], model.forward_heads(h, mc=True)["single"])
    assert not net.training and not any(m.training for m in net.modules())


def test_projection_applies_before_softmax():
    model = TinyStudent().eval()
    x = identity_preprocess(torch.from_numpy(random_images(3)[0]))
    probs = mc_probs(model, x, 2, project=lambda t: t[:, :4])
    assert probs["robust"].shape == (2, 3, 4)
    torch.testing.assert_close(probs["robust"].sum(-1), torch.ones(2, 3))


def test_flops_overhead_of_mc_passes():
    model = TinyStudent(split=True)
    x = torch.zeros(1, 3, 8, 8)
    f = inference_flops(model, x, 10)
    assert f["split_heads"] and f["gflops_ours"] > f["gflops_plain"] > 0
    # ours = trunk + tunable + 3 head bodies + 30 classifiers; plain = trunk + tunable + one head
    body = count_flops(lambda: model.heads["clean"].pre_logits(torch.zeros(1, 16)))
    clf = count_flops(lambda: model.heads["clean"].classifier(torch.zeros(1, 16)))
    expected = (f["gflops_trunk"] + f["gflops_tunable"]) * 1e9 + 3 * body + 30 * clf
    assert f["gflops_ours"] * 1e9 == pytest.approx(expected)
    assert f["overhead"] == pytest.approx(f["gflops_ours"] / f["gflops_plain"] - 1)


def test_flops_of_real_student_stays_small():
    student = pytest.importorskip("robustify.models.student")
    model = student.create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=0, pretrained=False)
    f = inference_flops(model, torch.zeros(1, 3, 32, 32), 10)
    assert 0 < f["overhead"] < 0.10


def test_label_space_mismatch_is_one_clear_error():
    from robustify.errors import DataError

    x, y = random_images(4)
    with pytest.raises(DataError, match="predicts 10 classes but the dataset has 3"):
        run_onepass(TinyStudent(), identity_preprocess, iterate_arrays(x, y % 3, 4), 2, 3)
    with pytest.raises(DataError, match="label 9 outside 0..3"):
        run_onepass(TinyStudent(), identity_preprocess, iterate_arrays(x, np.array([0, 9, 1, 2]), 4), 2, 4)
