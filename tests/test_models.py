"""Model registry (timm-style): every registered model builds and runs; real weights reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import MIRROR, one_error_line
from robustify.errors import CheckpointError, ConfigError
from robustify.models import Preprocess, create_model, get_spec, list_models

SMALL = ["resnet8_cifar", "resnet20_cifar", "resnet56_cifar", "efficientnet_lite0", "tiny_vit", "tiny_clip"]
LARGE = sorted(set(list_models()) - set(SMALL))


@pytest.mark.parametrize("name", SMALL)
def test_forward_backward_random_init(name):
    torch.manual_seed(0)
    spec = get_spec(name)
    model = create_model(name, num_classes=10).train()
    x = Preprocess.for_model(name, 32)(torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8))
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    assert feats.shape == (2, model.get_classifier().in_features)
    assert spec.family in ("cifar_resnet", "efficientnet", "timm", "open_clip")


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_paper_models_build_without_weights(name):
    model = create_model(name, num_classes=10)
    x = torch.zeros(1, 3, get_spec(name).image_size, get_spec(name).image_size)
    with torch.no_grad():
        assert model(x).shape == (1, 10)


def test_unknown_model_suggests():
    with pytest.raises(ConfigError, match="unknown model 'resnet20_cifa'; did you mean 'resnet20_cifar'"):
        create_model("resnet20_cifa")


def test_preprocess_rejects_float_input():
    with pytest.raises(ValueError, match="uint8 NHWC"):
        Preprocess(32, (0.5,) * 3, (0.5,) * 3)(torch.zeros(1, 32, 32, 3))


def test_preprocess_resizes_and_normalises():
    pre = Preprocess.for_model("efficientnet_lite0", 64)
    out = pre(torch.full((1, 32, 32, 3), 255, dtype=torch.uint8))
    assert out.shape == (1, 3, 64, 64) and torch.allclose(out, torch.ones_like(out))


def test_wrong_architecture_checkpoint_is_one_error():
    with pytest.raises(CheckpointError, match=r"resnet20-12fca82f.th does not fit model 'resnet56_cifar'.*pass a checkpoint made for resnet56_cifar"):
        create_model("resnet56_cifar", pretrained=True, weights=str(MIRROR / "resnet20-12fca82f.th"))


def test_corrupt_checkpoint_is_one_error(tmp_path):
    bad = tmp_path / "bad.th"
    bad.write_bytes((MIRROR / "resnet20-12fca82f.th").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        create_model("resnet20_cifar", pretrained=True, weights=str(bad))


def test_lite_weights_load_positionally_and_classify_imagenet():
    from robustify.data import imagenet_samples

    ds = imagenet_samples()
    model = create_model("efficientnet_lite0", pretrained=True)
    pre = Preprocess.for_model("efficientnet_lite0", 224)
    idx = np.arange(0, 1000, 5)  # 200 classes, one image each
    with torch.no_grad():
        pred = model(pre(torch.from_numpy(ds.x[idx]))).argmax(1).numpy()
    # measured 65.8% on all 1000 (96-px samples upsampled); random weights would give 0.1%
    assert (pred == ds.y[idx]).mean() > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name, expected", [("resnet20_cifar", 91.73), ("resnet56_cifar", 93.39)])
def test_cifar_teachers_reproduce_published_accuracy(name, expected):
    from robustify.data import cifar10

    test = cifar10("test")
    model = create_model(name, pretrained=True)
    pre = Preprocess.for_model(name)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test), 1000):
            correct += int((model(pre(torch.from_numpy(test.x[i:i + 1000]))).argmax(1).numpy() == test.y[i:i + 1000]).sum())
    assert correct / 100 == pytest.approx(expected, abs=0.005)


def test_head_for_wrong_student_is_one_line(cli, tmp_path):
    from robustify.train.linear_probe import save_head

    head = tmp_path / "head.pt"
    save_head(head, torch.nn.Linear(1280, 10), "efficientnet_lite2", 32, tuple("abcdefghij"))
    code, _, err = cli("baseline", "--method", "original", "--student", "efficientnet_lite0", "--head", head,
                       "--record", tmp_path / "r.json")
    assert code == 2 and "not a linear-probe head of efficientnet_lite0" in one_error_line(err)
    assert not (tmp_path / "r.json").exists()
