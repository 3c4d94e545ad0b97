"""Distillation: cache ≡ no cache, frozen trunk, resume ≡ uninterrupted, NaN handling, checkpoints, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

from robustify.errors import CheckpointError, TrainingError  # noqa: E402
from robustify.models.preprocess import Preprocess  # noqa: E402
from robustify.models.registry import create_model  # noqa: E402
from robustify.models.student import create_student  # noqa: E402
from robustify.train import cache as C  # noqa: E402
from robustify.train.distill import (DistillData, TrainSettings, load_student, save_student, step_loss,  # noqa: E402
                                     student_meta, train)
from robustify.train.losses import LossWeights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread for this module


def flip_views(images: np.ndarray, seed: int) -> np.ndarray:
    """A cheap deterministic 'augmentation' for tests: flip + seeded noise."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-20, 21, size=images.shape)
    return np.clip(images[:, :, ::-1].astype(int) + noise, 0, 255).astype(np.uint8)


def _student(seed: int = 0):
    torch.manual_seed(seed)
    return create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.1, pretrained=False)


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(48, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=48).astype(np.int64)
    return x, y


def _caches(tmp_path, tiny, dtype="float32", k=2):
    x, y = tiny
    student = _student()
    torch.manual_seed(1)
    teacher = create_model("resnet8_cifar", num_classes=10)
    pre = Preprocess.for_model("resnet8_cifar")
    views = C.build_views(tmp_path, x, "augmix", 0, k, flip_views)
    trunk = C.build_trunk(tmp_path, student, pre, x, y, views, "r8", 16, dtype, "resnet8_cifar")
    tf = C.build_teacher(tmp_path, teacher, pre, views, "t8", 16, "resnet8_cifar")
    return student, teacher, pre, views, trunk, tf


def test_cached_losses_equal_uncached(tmp_path, tiny):
    x, y = tiny
    student, teacher, pre, views, trunk, tf = _caches(tmp_path, tiny)
    data = DistillData.from_arrays(trunk.arrays, tf.arrays)
    w = LossWeights(alpha=0.4, tau=2.0)
    idx = torch.arange(0, 16)
    v = flip_views(x, C.view_seed(0, 1))  # view set 1, made afresh
    with torch.no_grad():  # the uncached path: trunk, T_orig and teacher computed from the images now
        z_c = student.forward_trunk(pre(torch.from_numpy(x[:16])))
        z_a = student.forward_trunk(pre(torch.from_numpy(v[:16])))
        t_small = teacher(pre(torch.from_numpy(v[:16])))
        student.eval()
        t_orig = student.forward_head("combined", student.forward_tunable(z_c))
    state = {k: t.clone() for k, t in student.state_dict().items()}
    student.train()
    torch.manual_seed(5)
    live, _ = step_loss(student, z_c, z_a, torch.from_numpy(y[:16]), t_orig, t_small, w)
    student.load_state_dict(state)  # undo the BatchNorm running-stat update
    torch.manual_seed(5)
    cached, _ = step_loss(student, data.z_clean[idx], data.z_views[1, idx], data.y[idx], data.t_orig[idx], data.t_views[1, idx], w)
    assert cached.item() == pytest.approx(live.item(), rel=1e-5)
    # reading the same files again gives the same arrays (and does not rebuild)
    again = C.build_trunk(tmp_path, _student(), pre, x, y, views, "r8", 16, "float32", "resnet8_cifar")
    assert again.sha256 == trunk.sha256 and again.build_s == trunk.build_s


def test_float16_cache_changes_the_loss_little(tmp_path, tiny):
    _, _, _, _, t32, tf = _caches(tmp_path / "a", tiny, "float32")
    _, _, _, _, t16, _ = _caches(tmp_path / "b", tiny, "float16")
    assert t16.arrays["z_clean"].dtype == np.float16
    s = _student()
    s.eval()
    w = LossWeights()
    d32, d16 = DistillData.from_arrays(t32.arrays, tf.arrays), DistillData.from_arrays(t16.arrays, tf.arrays)
    idx = torch.arange(48)
    a, _ = step_loss(s, d32.z_clean[idx], d32.z_views[0, idx], d32.y, d32.t_orig, d32.t_views[0], w)
    b, _ = step_loss(s, d16.z_clean[idx], d16.z_views[0, idx], d16.y, d16.t_orig, d16.t_views[0], w)
    assert b.item() == pytest.approx(a.item(), rel=2e-3)


def test_training_changes_heads_not_the_trunk_and_resume_is_exact(tmp_path, tiny):
    student, _, _, _, trunk, tf = _caches(tmp_path, tiny)
    data = DistillData.from_arrays(trunk.arrays, tf.arrays)
    w, s = LossWeights(), TrainSettings(epochs=2, lr=1e-2, batch_size=16)
    before = student.trunk_fingerprint()
    head0 = student.heads["robust"].classifier.weight.detach().clone()
    full = train(student, data, w, s, seed=3, resume_path=tmp_path / "full.resume", run_key="k", progress=False)
    assert student.trunk_fingerprint() == before
    assert not torch.allclose(head0, student.heads["robust"].classifier.weight)
    assert full["images_seen"] == 2 * 48 * 2 and len(full["history"]) == 2

    cut = _caches(tmp_path / "b", tiny)[0]
    part = train(cut, data, w, s, seed=3, resume_path=tmp_path / "cut.resume", run_key="k", stop_after=1, progress=False)
    assert part["epochs_done"] == 1
    resumed = _caches(tmp_path / "c", tiny)[0]  # a fresh process: new student object
    again = train(resumed, data, w, s, seed=3, resume_path=tmp_path / "cut.resume", run_key="k", progress=False)
    assert again["epochs_done"] == 2 and again["history"] == full["history"]
    for k, v in student.trainable_state().items():
        assert torch.equal(v, resumed.trainable_state()[k]), k


def test_nan_loss_raises_and_keeps_the_last_good_checkpoint(tmp_path, tiny):
    student, _, _, _, trunk, tf = _caches(tmp_path, tiny)
    arrays = dict(trunk.arrays)
    z = arrays["z_views"].copy()
    z[1, :] = np.nan  # view set 1 is used in epoch 2
    arrays["z_views"] = z
    data = DistillData.from_arrays(arrays, tf.arrays)
    resume = tmp_path / "x.resume"
    with pytest.raises(TrainingError, match="epoch 2"):
        train(student, data, LossWeights(), TrainSettings(epochs=2, batch_size=16), seed=0, resume_path=resume,
              run_key="k", progress=False)
    assert torch.load(resume, weights_only=False)["epoch"] == 1


def test_checkpoint_roundtrip_and_bad_files(tmp_path):
    student = _student()
    with torch.no_grad():
        student.heads["clean"].classifier.bias.add_(1.0)
    meta = student_meta("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.1, image_size=32, pretrained=False)
    save_student(tmp_path / "s.pt", student, meta)
    loaded, m = load_student(tmp_path / "s.pt")
    x = torch.randn(2, 3, 32, 32)
    student.eval()
    for h, v in student(x).items():
        torch.testing.assert_close(loaded(x)[h], v)
    assert m["head_depth"] == 1 and loaded.dropout_p == 0.1 and not loaded.training
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not a distilled student"):
        load_student(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_student(tmp_path / "missing.pt")


def test_pretrained_checkpoint_stores_only_the_trainable_part(tmp_path):
    student = create_student("resnet20_cifar", n_tunable_blocks=2, head_depth=1)
    meta = student_meta("resnet20_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.1, image_size=32)
    save_student(tmp_path / "s.pt", student, meta)
    obj = torch.load(tmp_path / "s.pt", weights_only=True)
    assert "trunk_state" not in obj and not any(k.startswith("trunk.") for k in obj["state"])
    loaded, _ = load_student(tmp_path / "s.pt")
    assert loaded.trunk_fingerprint() == student.trunk_fingerprint()


def test_cli_end_to_end_tiny(tmp_path, monkeypatch):
    """The real CLI on 20 training images: record, checkpoint, MLflow; a rerun reuses the caches."""
    from robustify.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    preset = tmp_path / "p.yaml"
    preset.write_text(f"""
threads: 1
data: {{root: {tmp_path}/data}}
distill:
  epochs: 2
  views_per_image: 2
  batch_size: 8
  train_per_class: 2
  n_tunable_blocks: {{resnet20_cifar: 2}}
""")
    out, rec = tmp_path / "s.pt", tmp_path / "r.json"
    args = ["distill", "--configfile", str(preset), "--student", "resnet20_cifar", "--teacher", "resnet20_cifar",
            "--scheme", "augmix", "--variant", "full", "--teacher-checkpoint", "pretrained", "--out", str(out), "--record", str(rec)]
    assert main(args) == 0
    r = json.loads(rec.read_text())
    assert r["run"]["stage"] == "distill" and r["run"]["variant"] == "full" and r["run"]["teacher"] == "resnet20_cifar"
    assert r["timing"]["images_seen"] == 2 * 20 * 2 and r["timing"]["cache_s"] > 0
    assert {"val_acc_clean", "val_acc_robust", "val_aug_acc_combined", "val_kl_combined_robust"} <= set(r["metrics"])
    assert len(r["artifacts"]["cache"]) == 3
    student, meta = load_student(out)
    assert meta["student"] == "resnet20_cifar" and meta["n_tunable_blocks"] == 2
    assert not Path(str(out) + ".resume").exists()
    # no_kd needs no teacher and reuses the views/trunk caches
    args2 = [a if a != "full" else "no_kd" for a in args[:-4]] + ["--out", str(tmp_path / "n.pt"), "--record", str(tmp_path / "n.json")]
    args2 = [a for a in args2 if a not in ("--teacher-checkpoint", "pretrained")]
    assert main(args2) == 0
    r2 = json.loads((tmp_path / "n.json").read_text())
    assert len(r2["artifacts"]["cache"]) == 2 and r2["timing"]["cache_teacher_s"] == 0


def test_cli_missing_teacher_is_one_line(tmp_path, monkeypatch, capsys):
    from robustify.cli import main

    monkeypatch.chdir(ROOT)
    preset = tmp_path / "p.yaml"
    preset.write_text(f"data: {{root: {tmp_path}/data}}\ndistill: {{train_per_class: 1, views_per_image: 1, epochs: 1, "
                      f"teacher_checkpoint: '{tmp_path}/none_{{teacher}}.pt', n_tunable_blocks: {{resnet20_cifar: 1}}}}\n")
    rc = main(["distill", "--configfile", str(preset), "--student", "resnet20_cifar", "--teacher", "resnet20_cifar",
               "--scheme", "augmix", "--variant", "full", "--out", str(tmp_path / "s.pt"), "--record", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "robust teacher not found" in err[-1]
    assert not (tmp_path / "s.pt").exists() and not (tmp_path / "r.json").exists()


def test_cli_learns_from_the_teacher_seed_params_name(tmp_path, monkeypatch, capsys):
    """A distillation seed without its own teacher reads the first of teachers.seeds (the path it names)."""
    from robustify.cli import main

    monkeypatch.chdir(ROOT)
    preset = tmp_path / "p.yaml"
    preset.write_text(f"data: {{root: {tmp_path}/data}}\nteachers: {{seeds: [5]}}\n"
                      f"distill: {{train_per_class: 1, views_per_image: 1, epochs: 1, "
                      f"teacher_checkpoint: '{tmp_path}/t_{{teacher}}_s{{seed}}.pt', n_tunable_blocks: {{resnet20_cifar: 1}}}}\n")
    rc = main(["distill", "--configfile", str(preset), "--student", "resnet20_cifar", "--teacher", "resnet20_cifar",
               "--scheme", "augmix", "--variant", "full", "--seed", "2", "--out", str(tmp_path / "s.pt"),
               "--record", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and f"{tmp_path}/t_resnet20_cifar_s5.pt: robust teacher not found" in err[-1], err[-1]
    assert "--seed 5" in err[-1]
