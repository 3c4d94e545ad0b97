"""Three-head student: splits of every model family, frozen trunk, dropout, zero-shot and LP heads."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

from robustify.errors import CheckpointError, ConfigError  # noqa: E402
from robustify.models.heads import CIFAR10_CLASSNAMES, CIFAR10_TEMPLATES  # noqa: E402
from robustify.models.registry import create_model, get_spec  # noqa: E402
from robustify.models.student import HEADS, MultiHeadStudent, create_student, split_model  # noqa: E402

SPLITS = [("resnet8_cifar", 32, 2), ("tiny_vit", 32, 2), ("tiny_clip", 32, 2), ("efficientnet_lite0", 64, 3)]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread for this module


def _student(name: str, k: int, d: int, p: float = 0.1) -> tuple[MultiHeadStudent, nn.Module]:
    torch.manual_seed(0)
    model = create_model(name, pretrained=False, num_classes=10)
    if name == "tiny_clip":  # its classifier starts at zero
        nn.init.normal_(model.head.weight)
    ref = copy.deepcopy(model).eval()
    return MultiHeadStudent(*split_model(model, get_spec(name).family), n_tunable_blocks=k, head_depth=d, dropout_p=p), ref


@pytest.mark.parametrize("name,size,k", SPLITS)
@pytest.mark.parametrize("d", [0, 1])
def test_split_heads_start_as_the_original_model(name, size, k, d):
    student, ref = _student(name, k, d)
    student.eval()
    x = torch.randn(3, 3, size, size)
    out = student(x)
    assert set(out) == set(HEADS)
    for h in HEADS:
        torch.testing.assert_close(out[h], ref(x), rtol=1e-5, atol=1e-5)
    assert student.features(x).shape == (3, student.num_features)
    assert all(not p.requires_grad for p in student.trunk.parameters())
    assert all(p.requires_grad for p in student.trainable_parameters())
    assert all(len(student.heads[h].blocks) == d for h in HEADS)


@pytest.mark.parametrize("name,size,k", SPLITS)
def test_trunk_is_frozen_and_gradients_reach_the_tunable_part(name, size, k):
    student, _ = _student(name, k, 1)
    student.train()
    assert not student.trunk.training
    x = torch.randn(4, 3, size, size)
    z = student.forward_trunk(x)
    assert not z.requires_grad
    out = student.forward_heads(student.forward_tunable(z))
    sum(o.sum() for o in out.values()).backward()
    assert all(p.grad is None for p in student.trunk.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.tunable.parameters()) or len(student.tunable) == 0
    for h in HEADS:
        assert student.heads[h].classifier.weight.grad.abs().sum() > 0


def test_heads_own_private_copies():
    student, _ = _student("resnet8_cifar", 2, 1)
    a, b = student.heads["clean"].blocks[0].conv1.weight, student.heads["robust"].blocks[0].conv1.weight
    assert a.data_ptr() != b.data_ptr()
    torch.testing.assert_close(a, b)


def test_dropout_only_when_training_or_mc():
    student, _ = _student("resnet8_cifar", 2, 0, p=0.5)
    student.eval()
    h = student.forward_tunable(student.forward_trunk(torch.randn(8, 3, 32, 32)))
    a, b = student.forward_heads(h), student.forward_heads(h)
    torch.testing.assert_close(a["clean"], b["clean"])
    torch.manual_seed(1)
    m1 = student.forward_heads(h, mc=True)["clean"]
    m2 = student.forward_heads(h, mc=True)["clean"]
    assert not torch.allclose(m1, m2)
    assert student.dropout_p == 0.5


def test_bad_depths_are_config_errors():
    with pytest.raises(ConfigError, match="head_depth"):
        _student("resnet8_cifar", 1, 2)
    with pytest.raises(ConfigError, match="n_tunable_blocks"):
        _student("resnet8_cifar", 4, 0)  # resnet8 has 3 blocks


def test_imagenet_head_needs_a_linear_probe():
    with pytest.raises(ConfigError, match="linear-probe"):
        create_student("efficientnet_lite0", n_tunable_blocks=1, pretrained=True)


def test_zero_shot_heads_match_manual_clip_computation():
    import open_clip

    torch.manual_seed(0)
    student = create_student("tiny_clip", n_tunable_blocks=1, head_depth=0, pretrained=False, zero_shot=True).eval()
    torch.manual_seed(0)
    clip = create_model("tiny_clip", pretrained=False).clip.eval()
    with torch.no_grad():
        rows = []
        for c in CIFAR10_CLASSNAMES:
            t = clip.encode_text(open_clip.tokenize([f(c) for f in CIFAR10_TEMPLATES], context_length=16))
            e = (t / t.norm(dim=-1, keepdim=True)).mean(0)
            rows.append(e / e.norm())
        text = torch.stack(rows)
        x = torch.randn(5, 3, 32, 32)
        img = clip.encode_image(x)
        manual = clip.logit_scale.exp() * (img / img.norm(dim=-1, keepdim=True)) @ text.T
        out = student(x)
    for h in HEADS:
        torch.testing.assert_close(out[h], manual, rtol=1e-4, atol=1e-4)


def test_linear_probe_head_initialises_all_heads(tmp_path):
    torch.manual_seed(0)
    lin = nn.Linear(64, 10)
    torch.save({"classifier": lin.state_dict(), "image_size": 32, "student": "resnet8_cifar"}, tmp_path / "lp.pt")
    student = create_student("resnet8_cifar", n_tunable_blocks=1, pretrained=False, init_head=str(tmp_path / "lp.pt"))
    for h in HEADS:
        torch.testing.assert_close(student.heads[h].classifier.weight, lin.weight)
    torch.save({"classifier": nn.Linear(32, 10).state_dict(), "image_size": 32}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="features"):
        create_student("resnet8_cifar", n_tunable_blocks=1, pretrained=False, init_head=str(tmp_path / "bad.pt"))


def test_pretrained_resnet56_split_keeps_its_predictions():
    torch.manual_seed(0)
    ref = create_model("resnet56_cifar", pretrained=True)
    student = create_student("resnet56_cifar", n_tunable_blocks=3, head_depth=1).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(student(x)["combined"], ref(x), rtol=1e-5, atol=1e-5)
    assert F.softmax(ref(x), 1).shape == (2, 10)
