"""Baselines (issue 9): WiSE endpoints exact, VPT keeps the trunk and learns, E2E changes it, APT ≡ distill no_kd,
checkpoints readable by the evaluator, bad input is one line."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

from robustify.config import BaselinesConfig, TeachersConfig  # noqa: E402
from robustify.models.registry import create_model  # noqa: E402
from robustify.train import vpt  # noqa: E402
from robustify.train.e2e import finetune, load_whole, loop_config, save_whole  # noqa: E402
from robustify.train.wise import interpolate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread for this module


@pytest.fixture(scope="module")
def cifar_tiny():
    """64 real CIFAR-10 training images (the first 6-7 of each class)."""
    from robustify.data import cifar10

    ds = cifar10("train", 100).head(7)
    return ds.x[:64], ds.y[:64]


def _loop(method: str, epochs: int = 5, lr: float = 0.05) -> TeachersConfig:
    cfg = BaselinesConfig(e2e_epochs=epochs, vpt_epochs=epochs, e2e_lr=lr, vpt_lr=lr, e2e_batch_size=16, vpt_batch_size=16)
    return loop_config(TeachersConfig(), cfg, method)


def _r8(seed: int):
    torch.manual_seed(seed)
    return create_model("resnet8_cifar", num_classes=10)


def _equal_states(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------
# WiSE


def test_wise_endpoints_are_exact_and_midpoint_is_the_mean():
    a, b = _r8(0).state_dict(), _r8(1).state_dict()
    assert _equal_states(interpolate(a, b, 0.0), a)
    assert _equal_states(interpolate(a, b, 1.0), b)
    mid = interpolate(a, b, 0.5)
    assert torch.allclose(mid["linear.weight"], (a["linear.weight"] + b["linear.weight"]) / 2)
    assert mid["bn1.num_batches_tracked"].dtype == torch.long
    with pytest.raises(ValueError):
        interpolate(a, b, 1.5)


def test_wise_cli_reproduces_both_endpoints(tmp_path, cli, monkeypatch):
    """α=0 is the pretrained student, α=1 the E2E checkpoint, bit for bit (classifier included)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    orig = create_model("resnet20_cifar", pretrained=True)
    e2e = create_model("resnet20_cifar", pretrained=True)
    with torch.no_grad():
        for p in e2e.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_whole(tmp_path / "e2e.pt", e2e, "resnet20_cifar", 32, {"method": "e2e", "seed": 0})
    (tmp_path / "e2e.json").write_text(json.dumps({"run": {}, "metrics": {}, "timing": {"train_s": 2.0, "images_seen": 10, "epochs": 1}}))
    preset = tmp_path / "p.yaml"
    preset.write_text(f"threads: 1\ndata: {{root: {tmp_path}/data, val_per_class: 2}}\n")
    for alpha, want in ((0, orig), (1, e2e)):
        code, _, err = cli("baseline", "--configfile", preset, "--method", "wise_e2e", "--student", "resnet20_cifar",
                           "--alpha", alpha, "--e2e", tmp_path / "e2e.pt", "--out", tmp_path / f"w{alpha}.pt",
                           "--record", tmp_path / f"w{alpha}.json")
        assert code == 0, err
        got, obj = load_whole(tmp_path / f"w{alpha}.pt")
        assert _equal_states(got.state_dict(), want.state_dict())
        rec = json.loads((tmp_path / f"w{alpha}.json").read_text())
        assert rec["run"]["method"] == f"wise_e2e_{alpha}" and rec["timing"]["train_s"] == 2.0  # WiSE costs the E2E run


# ---------------------------------------------------------------------------------------------
# E2E and VPT (the teacher loop on a student)


def test_e2e_changes_the_trunk_and_lowers_the_loss(tmp_path, cifar_tiny):
    x, y = cifar_tiny
    model = _r8(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = finetune("resnet8_cifar", model, "augmix", 0, _loop("e2e"), x, y, tmp_path / "e.pt", 32, progress=False)
    assert res.epoch_loss[-1] < res.epoch_loss[0]
    assert not torch.equal(model.layer1[0].conv1.weight, before["layer1.0.conv1.weight"])
    assert not torch.equal(model.bn1.running_mean, before["bn1.running_mean"])
    assert res.images_seen == 3 * res.train_images == 3 * 5 * 64  # JSD triplets: every view is an image seen
    assert not list(tmp_path.iterdir())  # the loop's scratch output and resume state are removed


def test_vpt_padding_keeps_the_trunk_bit_equal_and_learns(tmp_path, cifar_tiny):
    x, y = cifar_tiny
    model = vpt.build(_r8(0), "cifar_resnet", 32, tokens=4, pad=4)
    trunk0 = {k: v.clone() for k, v in model.trunk_state().items()}
    clf0 = model.get_classifier().weight.clone()
    with torch.no_grad():  # the zero prompt is the original model
        inp = torch.randn(2, 3, 32, 32)
        assert torch.equal(model(inp), model.base(inp))
    res = finetune("resnet8_cifar", model, "augmix", 0, _loop("vpt"), x, y, tmp_path / "v.pt", 32, progress=False)
    assert res.epoch_loss[-1] < res.epoch_loss[0]
    assert all(torch.equal(v, trunk0[k]) for k, v in model.trunk_state().items())  # weights and BN statistics
    assert model.prompt.top.abs().sum() > 0 and not torch.equal(model.get_classifier().weight, clf0)
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in [*model.prompt.parameters(), *model.get_classifier().parameters()]}


def test_vpt_micro_batches_give_the_whole_batch_update(tmp_path, cifar_tiny):
    """Frozen BatchNorm: splitting each batch into forwards of ≤ micro_batch images and accumulating
    gradients is the same training (up to float summation order), only faster on a CPU."""
    from robustify.train.distributed import DistEnv
    from robustify.train.teacher import micro_batch_images

    x, y = cifar_tiny
    states = {}
    for micro in (0, 6):  # whole 16-image batches (48 views) vs forwards of 2 images × 3 views
        model = vpt.build(_r8(0), "cifar_resnet", 32, tokens=4, pad=4).train()
        assert micro_batch_images(model, micro, DistEnv()) == micro
        cfg = _loop("vpt", epochs=2).model_copy(update={"micro_batch": micro})
        res = finetune("resnet8_cifar", model, "augmix", 0, cfg, x, y, tmp_path / f"v{micro}.pt", 32, progress=False)
        states[micro] = (model.state_dict(), res.epoch_loss)
    for k, v in states[0][0].items():
        torch.testing.assert_close(states[6][0][k], v, rtol=1e-4, atol=1e-6, msg=k)
    np.testing.assert_allclose(states[6][1], states[0][1], rtol=1e-5)


def test_batchnorm_in_training_mode_is_never_split():
    from robustify.train.distributed import DistEnv
    from robustify.train.teacher import micro_batch_images

    assert micro_batch_images(_r8(0).train(), 32, DistEnv()) == 0  # E2E / teachers: batch statistics
    assert micro_batch_images(vpt.build(_r8(0), "cifar_resnet", 32, tokens=4, pad=4).train(), 32, DistEnv(world_size=2)) == 0


def test_vpt_deep_on_a_vit_keeps_the_trunk_learns_and_roundtrips(tmp_path, cifar_tiny):
    x, y = cifar_tiny
    torch.manual_seed(0)
    model = vpt.build(create_model("tiny_vit", num_classes=10), "timm", 32, tokens=3, pad=4)
    assert model.prompt_type == "deep" and model.prompt.prompts.shape[:2] == (4, 3)
    trunk0 = {k: v.clone() for k, v in model.trunk_state().items()}
    p0 = model.prompt.prompts.detach().clone()
    res = finetune("tiny_vit", model, "augmix", 0, _loop("vpt", lr=0.1), x, y, tmp_path / "v.pt", 32, progress=False)
    assert res.epoch_loss[-1] < res.epoch_loss[0]
    assert all(torch.equal(v, trunk0[k]) for k, v in model.trunk_state().items())
    assert not torch.equal(model.prompt.prompts, p0)
    vpt.save(tmp_path / "vpt.pt", model, "tiny_vit", {"method": "vpt", "seed": 0})
    from robustify.config import load_params
    from robustify.evaluate.runner import load_model

    loaded = load_model(str(tmp_path / "vpt.pt"), None, load_params(ROOT / "params.yaml"))
    assert loaded.run["method"] == "vpt" and loaded.student == "tiny_vit"
    inp = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model(inp), model.eval()(inp), atol=1e-6)


def test_vpt_refuses_models_it_cannot_prompt():
    from robustify.errors import ConfigError

    with pytest.raises(ConfigError):
        vpt.prompt_type_for("open_clip")
    with pytest.raises(ConfigError):
        vpt.PaddingPrompt(32, 16)


# ---------------------------------------------------------------------------------------------
# the real CLI on tiny real data


def _preset(tmp_path: Path) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(f"""
threads: 1
data: {{root: {tmp_path}/data, val_per_class: 2}}
baselines: {{train_per_class: 2, e2e_epochs: 2, vpt_epochs: 2, e2e_batch_size: 10, vpt_batch_size: 10}}
distill: {{train_per_class: 2, epochs: 2, views_per_image: 2, batch_size: 8, n_tunable_blocks: {{resnet20_cifar: 2}}}}
""")
    return p


def test_cli_e2e_and_vpt_write_evaluable_checkpoints(tmp_path, cli, monkeypatch):
    from robustify.config import load_params
    from robustify.evaluate.runner import load_model

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    preset = _preset(tmp_path)
    pretrained = create_model("resnet20_cifar", pretrained=True)
    params = load_params(ROOT / "params.yaml", [preset])
    for method in ("e2e", "vpt"):
        code, _, err = cli("baseline", "--configfile", preset, "--method", method, "--student", "resnet20_cifar",
                           "--out", tmp_path / f"{method}.pt", "--record", tmp_path / f"{method}.json")
        assert code == 0, err
        rec = json.loads((tmp_path / f"{method}.json").read_text())
        t = rec["timing"]
        assert rec["run"]["method"] == method and rec["run"]["stage"] == "baselines"
        assert t["epochs"] == 2 and t["train_images"] == 2 * 20 and t["images_seen"] == 3 * t["train_images"]
        assert t["s_per_image"] == pytest.approx(t["train_s"] / t["images_seen"]) and t["cpu_s_per_image"] > 0
        assert len(rec["metrics"]["train_loss"]) == 2 and 0 <= rec["metrics"]["val"] <= 100
        loaded = load_model(str(tmp_path / f"{method}.pt"), None, params)
        assert loaded.run["method"] == method and loaded.image_size == 32
        trunk = {k: v for k, v in loaded.model.state_dict().items() if "linear" not in k and "prompt" not in k}
        same = all(torch.equal(v, pretrained.state_dict()[k.split("model.", 1)[1].removeprefix("base.")]) for k, v in trunk.items())
        assert same == (method == "vpt")  # VPT keeps the pretrained trunk, E2E changes it


def test_apt_is_distill_no_kd(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    preset = _preset(tmp_path)
    code, _, err = cli("baseline", "--configfile", preset, "--method", "apt", "--student", "resnet20_cifar", "--scheme", "augmix",
                       "--out", tmp_path / "apt.pt", "--record", tmp_path / "apt.json")
    assert code == 0, err
    code, _, err = cli("distill", "--configfile", preset, "--student", "resnet20_cifar", "--teacher", "resnet20_cifar",
                       "--scheme", "augmix", "--variant", "no_kd", "--out", tmp_path / "nokd.pt", "--record", tmp_path / "nokd.json")
    assert code == 0, err
    a, d = (torch.load(tmp_path / f, weights_only=True) for f in ("apt.pt", "nokd.pt"))
    assert _equal_states(a["state"], d["state"])
    ra, rd = (json.loads((tmp_path / f).read_text()) for f in ("apt.json", "nokd.json"))
    assert ra["metrics"] == rd["metrics"]
    assert ra["run"]["method"] == "apt" and ra["run"]["variant"] == "no_kd" and ra["run"]["stage"] == "baselines"
    assert ra["timing"]["images_seen"] == rd["timing"]["images_seen"] and "cache_s" in ra["timing"]
    losses = [h["loss"] for h in ra["artifacts"]["history"]]
    assert losses[-1] < losses[0]  # the short real run lowers its training loss


def test_zero_shot_head_is_evaluable(tmp_path, cli, monkeypatch):
    """tiny_clip has no weights: pretend its random init is 'pretrained' to run the real command."""
    from robustify.config import load_params
    from robustify.evaluate.runner import load_model
    from robustify.models import registry

    spec = registry.get_spec("tiny_clip")
    monkeypatch.setitem(registry._REGISTRY, "tiny_clip", dataclasses.replace(spec, load_pretrained=lambda m, w: None))
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    preset = _preset(tmp_path)
    code, _, err = cli("baseline", "--configfile", preset, "--method", "zero_shot", "--student", "tiny_clip",
                       "--out", tmp_path / "zs.pt", "--record", tmp_path / "zs.json")
    assert code == 0, err
    rec = json.loads((tmp_path / "zs.json").read_text())
    assert rec["run"]["method"] == "zero_shot" and rec["timing"]["train_s"] == 0.0
    loaded = load_model(str(tmp_path / "zs.pt"), None, load_params(ROOT / "params.yaml", [preset]))
    assert loaded.run["method"] == "zero_shot"


# ---------------------------------------------------------------------------------------------
# bad input


def test_unknown_method_is_one_line(cli, capsys):
    with pytest.raises(SystemExit) as e:
        cli("baseline", "--method", "e2e_typo", "--student", "resnet56_cifar")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and [l for l in err.splitlines() if "error:" in l] == [
        l for l in err.splitlines() if "invalid choice: 'e2e_typo'" in l]


@pytest.mark.parametrize("argv, message", [
    (("--method", "wise_e2e", "--student", "resnet20_cifar", "--e2e", "/nonexistent/e2e.pt"), "E2E checkpoint not found"),
    (("--method", "zero_shot", "--student", "resnet20_cifar"), "zero_shot needs an open_clip student"),
    (("--method", "e2e", "--student", "resnet_typo"), "unknown model 'resnet_typo'"),
    (("--method", "wise_e2e", "--student", "resnet20_cifar", "--record", "x.json"), "pass --alpha too"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, cli, monkeypatch, argv, message):
    from conftest import one_error_line

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    code, _, err = cli("baseline", *argv)
    assert code == 2 and message in one_error_line(err)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.pt"))
