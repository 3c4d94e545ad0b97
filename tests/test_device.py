"""params `device`: resolution and clear errors here; on a machine with a GPU, training, caches, evaluation
and the corruption engine on the GPU against the same work on the CPU (skipped without CUDA: CI has none;
run `pytest tests/test_device.py` on a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustify import device
from robustify.config import TeachersConfig
from robustify.errors import ConfigError
from robustify.io import _on_host, save_torch
from robustify.models import Preprocess, create_model
from robustify.models.student import create_student
from robustify.train import distributed

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here; CI has none)")


@pytest.fixture
def on_cpu_after():
    yield
    device.use("cpu")


def test_auto_is_the_cpu_without_a_gpu(monkeypatch, on_cpu_after):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.resolve("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.resolve("auto") == torch.device("cuda")


@pytest.mark.parametrize("spec", ["gpu", "cuda0", "CPU", "cuda:x", ""])
def test_bad_spec_is_one_config_error(spec):
    with pytest.raises(ConfigError, match="auto, cpu, cuda, cuda:N"):
        device.resolve(spec)


def test_cuda_without_a_gpu_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="torch sees no GPU.*auto or cpu"):
        device.resolve("cuda")


def test_params_reject_a_device_typo(tmp_path):
    from robustify.config import load_params

    bad = tmp_path / "params.yaml"
    bad.write_text(PARAMS.read_text().replace("device: auto", "device: gpu"))
    with pytest.raises(ConfigError, match="device"):
        load_params(bad, [])


def test_device_flag_beats_params_and_is_checked(cli, capsys, monkeypatch, on_cpu_after):
    import argparse

    from robustify.commands import common

    with pytest.raises(SystemExit) as e:
        cli("check-config", "--device", "tpu")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "'tpu' is not one of auto, cpu, cuda, cuda:N" in err and "Traceback" not in err
    p = argparse.ArgumentParser()
    common.add_params_args(p)
    params = str(PARAMS)
    common.load(p.parse_args(["--params", params, "--device", "cpu"]))
    assert device.current() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="torch sees no GPU"):
        common.load(p.parse_args(["--params", params, "--device", "cuda"]))


def test_torchrun_ranks_take_their_local_gpu(monkeypatch, on_cpu_after):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    pinned = []
    monkeypatch.setattr(torch.cuda, "set_device", pinned.append)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert device.use("auto") == torch.device("cuda", 2) == device.current() and pinned == [torch.device("cuda", 2)]
    assert device.use("cuda:1") == torch.device("cuda", 1)  # an explicit index wins
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert device.use("cuda") == torch.device("cuda")


def test_distributed_backend_follows_the_device(monkeypatch):
    assert distributed.backend(torch.device("cpu")) == "gloo"
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: True)
    assert distributed.backend(torch.device("cuda", 0)) == "nccl"
    assert distributed.setup({}).device == "cpu"  # one process: the device of params


def test_host_copy_keeps_cpu_objects_as_they_are(tmp_path):
    """A CPU run saves exactly what it was given (same bytes as before GPU support; state_dict metadata kept)."""
    sd = create_model("resnet8_cifar", num_classes=10).state_dict()
    obj = {"model": sd, "list": [torch.ones(2)], "tuple": (1, torch.zeros(1)), "n": 3}
    assert _on_host(obj) is obj and _on_host(sd) is sd
    a, b = save_torch(tmp_path / "a.pt", obj), save_torch(tmp_path / "b.pt", obj)
    assert a == b


def test_preprocess_constants_follow_the_images():
    pre = Preprocess.for_model("resnet8_cifar")
    x = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    assert pre(x).device == x.device


def test_records_say_where_they_ran(on_cpu_after):
    from robustify.records import make_record

    device.use("cpu")
    assert make_record("evaluate", metrics={}, params_hash="h")["run"]["device"] == "cpu"
    assert make_record("evaluate", metrics={}, params_hash="h", device="cuda:1")["run"]["device"] == "cuda:1"

# ------------------------------------------------------------------------------------------------
# on a GPU: the same work as on the CPU, within float tolerance (TF32 off so both are plain fp32)


@pytest.fixture
def cuda(on_cpu_after):
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def _close_states(a: dict, b: dict, rel: float = 2e-3) -> None:
    for k, v in a.items():
        w = b[k].to(v.device)
        if v.is_floating_point():
            tol = rel * max(1.0, float(v.abs().max()))
            assert float((v - w).abs().max()) <= tol, (k, float((v - w).abs().max()))
        else:
            assert torch.equal(v, w), k


def _student_on_each_device(dropout_p: float):
    """('cpu', student) then ('cuda', student): the same resnet8 three-head student, placed on each in turn."""
    torch.manual_seed(0)
    init = create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=dropout_p, pretrained=False).state_dict()
    for where in ("cpu", "cuda"):
        device.use(where)
        student = create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=dropout_p, pretrained=False)
        student.load_state_dict(init)
        yield where, device.place(student)


def _images(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return x, rng.integers(0, 10, size=n).astype(np.int64)


@gpu
def test_teacher_training_on_the_gpu_follows_the_cpu(tmp_path, cuda):
    from robustify.train import teacher as T

    x, y = _images(64)
    cfg = TeachersConfig(epochs=1, lr=0.05, batch_size=32)
    torch.manual_seed(0)
    init = create_model("resnet8_cifar", num_classes=10).state_dict()
    runs = {}
    for where in ("cpu", "cuda"):
        device.use(where)
        model = create_model("resnet8_cifar", num_classes=10)
        model.load_state_dict(init)
        runs[where] = T.robustify_teacher("resnet8_cifar", "augmix", 0, cfg, x, y, tmp_path / f"{where}.pt",
                                          model=model, progress=False)
    assert next(runs["cuda"].model.parameters()).is_cuda
    _close_states(runs["cpu"].model.state_dict(), runs["cuda"].model.state_dict())
    assert runs["cuda"].epoch_loss == pytest.approx(runs["cpu"].epoch_loss, rel=1e-3)
    saved = torch.load(tmp_path / "cuda.pt", weights_only=True)  # no map_location: host tensors
    assert all(t.device.type == "cpu" for t in saved["model"].values())
    clf = T.Classifier(T.load_teacher(tmp_path / "cuda.pt"), Preprocess.for_model("resnet8_cifar"))
    assert np.array_equal(clf.predict(x), T.Classifier(runs["cpu"].model.cpu(), Preprocess.for_model("resnet8_cifar")).predict(x))


@gpu
def test_distillation_caches_and_training_on_the_gpu_follow_the_cpu(tmp_path, cuda):
    from robustify.train import cache as C
    from robustify.train.distill import DistillData, TrainSettings, head_logits, train
    from robustify.train.losses import LossWeights

    x, y = _images(48)
    flip = lambda images, seed: np.ascontiguousarray(images[:, :, ::-1])  # noqa: E731
    pre = Preprocess.for_model("resnet8_cifar")
    out = {}
    for where, student in _student_on_each_device(dropout_p=0.0):
        views = C.build_views(tmp_path / where, x, "augmix", 0, 2, flip)
        trunk = C.build_trunk(tmp_path / where, student, pre, x, y, views, "r8", 16, "float32", "resnet8_cifar")
        data = DistillData.from_arrays(trunk.arrays, None)
        res = train(student, data, LossWeights(variant="no_kd"), TrainSettings(epochs=2, lr=1e-2, batch_size=16), seed=3,
                    progress=False)
        out[where] = trunk.arrays, res, student.trainable_state(), head_logits(student, data.z_clean)
    (tc, rc, sc, lc), (tg, rg, sg, lg) = out["cpu"], out["cuda"]
    for k in ("z_clean", "z_views", "t_orig"):
        np.testing.assert_allclose(tg[k], tc[k], rtol=1e-3, atol=1e-4, err_msg=k)
    assert [h["loss"] for h in rg["history"]] == pytest.approx([h["loss"] for h in rc["history"]], rel=1e-3)
    # AdamW moves every weight by ~lr per step whatever its gradient's size, so a weight whose gradient is
    # rounding noise may move the other way (seen on an H100: max 3.6e-3 at lr 1e-2, 99th percentile 1.7e-4)
    diff = torch.cat([(sc[k] - sg[k].cpu()).abs().flatten() for k in sc if sc[k].is_floating_point()])
    assert float(diff.quantile(0.99)) <= 1e-3 and float(diff.max()) <= 1e-2 * 6, (float(diff.quantile(0.99)), float(diff.max()))
    assert all(v.device.type == "cpu" for v in lg.values())  # results come back to the host
    torch.testing.assert_close(lg["combined"], lc["combined"], rtol=5e-3, atol=5e-3)


@gpu
def test_evaluation_on_the_gpu_follows_the_cpu(cuda):
    from robustify.evaluate.onepass import deterministic_part, iterate_arrays, run_onepass
    from robustify.models.frozen import InferenceGraph

    x, y = _images(70)
    pre = Preprocess.for_model("resnet8_cifar")
    ops = {}
    for where, model in _student_on_each_device(dropout_p=0.2):
        model.eval()
        graph = InferenceGraph(model, deterministic_part(model), where)  # frozen on that device
        ops[where] = run_onepass(model, pre, iterate_arrays(x, y, 32), 1, 10, dropout_p=0.0, pre=graph)
        if where == "cuda":  # MC dropout on the GPU: seeded, so a rerun is identical, and it spreads the passes
            mc = [run_onepass(model, pre, iterate_arrays(x, y, 32), 8, 10, seed=5, pre=graph) for _ in range(2)]
    for k, v in ops["cpu"].arrays.items():
        np.testing.assert_allclose(ops["cuda"].arrays[k], v, rtol=1e-3, atol=1e-4, err_msg=k)
    for k, v in mc[0].arrays.items():
        assert np.array_equal(v, mc[1].arrays[k]), k
    assert mc[0].arrays["u_combined"].mean() > 0


@gpu
def test_corruption_engine_on_the_gpu_follows_the_cpu():
    """Deterministic corruptions match to rounding; the three whose per-pixel noise comes from torch's own
    generator (a different stream on the GPU) match in strength."""
    from robustify.corruptions import CORRUPTIONS, corrupt, image_seeds

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    x = np.ascontiguousarray(np.kron(base, np.ones((1, 4, 4, 1), dtype=np.uint8)))  # 32 px, some structure
    torch_noise = {"gaussian_noise", "shot_noise", "glass_blur"}
    for name in CORRUPTIONS:
        seeds = image_seeds(11, np.arange(len(x)), name, 3)
        c = corrupt(x, name, 3, seeds, device="cpu").astype(np.float64)
        g = corrupt(x, name, 3, seeds, device="cuda").astype(np.float64)
        assert g.shape == c.shape, name
        if name in torch_noise:
            strength_c, strength_g = np.abs(c - x).mean(), np.abs(g - x).mean()
            assert strength_g == pytest.approx(strength_c, rel=0.15), (name, strength_c, strength_g)
        else:
            assert np.abs(g - c).mean() <= 1.0, (name, np.abs(g - c).mean())


@gpu
def test_deepaugment_on_the_gpu_follows_the_cpu(on_cpu_after):
    """The networks' perturbations are drawn on the host, so both devices make the same views up to rounding."""
    from robustify.augment.deepaugment import deepaugment_images

    x, _ = _images(12)
    views = {}
    for where in ("cpu", "cuda"):
        device.use(where)
        views[where] = deepaugment_images(x, seed=4).astype(np.int16)
    diff = np.abs(views["cuda"] - views["cpu"])
    assert diff.mean() <= 0.5 and np.quantile(diff, 0.999) <= 2, (diff.mean(), diff.max())



@gpu
def test_frozen_graphs_are_used_under_tf32(on_cpu_after):
    """With torch's default TF32 convolutions the folded graph differs from eager by more than the CPU's
    1e-3; it must still be used (and stay close), not fall back to eager with a warning."""
    from robustify.evaluate.onepass import deterministic_part
    from robustify.models.frozen import InferenceGraph

    assert torch.backends.cudnn.allow_tf32  # torch's default
    device.use("cuda")
    torch.manual_seed(0)
    model = device.place(create_model("resnet56_cifar", num_classes=10)).eval()
    pre = Preprocess.for_model("resnet56_cifar")
    x = device.tensor(_images(64)[0])
    graph = InferenceGraph(model, lambda b: model(pre(b)), "resnet56")
    out = graph(x)
    assert graph.frozen
    torch.testing.assert_close(out, model(pre(x)).detach(), rtol=2e-2, atol=2e-2 * float(out.abs().max()))
    student = device.place(create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, pretrained=False)).eval()
    g2 = InferenceGraph(student, deterministic_part(student), "student")
    g2(pre(x))
    assert g2.frozen
