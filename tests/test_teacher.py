"""Teacher robustification: a real short fine-tune, resume after interruption, NaN handling, CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

from robustify.augment import TripletViews  # noqa: E402
from robustify.augment.views import AugmentSettings  # noqa: E402
from robustify.config import TeachersConfig  # noqa: E402
from robustify.data.datasets import cifar10  # noqa: E402
from robustify.errors import CheckpointError, TrainingError  # noqa: E402
from robustify.models import Preprocess, create_model  # noqa: E402
from robustify.train import teacher as T  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread for this module


@pytest.fixture(scope="module")
def train_small():
    return cifar10("train").head(12)  # 120 images


def _loss_on_views(model, x, y, scheme, cfg) -> float:
    tv = TripletViews(x, y, scheme, seed=123, settings=AugmentSettings.from_config(cfg))
    v, labels = tv.batch(np.arange(len(y)), epoch=0)
    pre = Preprocess.for_model("resnet20_cifar")
    with torch.no_grad():
        model.eval()
        logits = model(pre(torch.from_numpy(v.reshape(-1, 32, 32, 3))))
        return T._loss_fn(scheme, cfg.jsd_lambda)(logits, torch.from_numpy(labels)).item()


def test_short_finetune_lowers_loss_on_held_out_views(tmp_path):
    """1 epoch on 300 images lowers the loss on *other* DeepAugment views of them (a different seed)."""
    ds = cifar10("train").head(30)  # 300 images, 1 epoch of 9 steps
    cfg = TeachersConfig(epochs=1, lr=0.02, batch_size=32)
    before = _loss_on_views(create_model("resnet20_cifar", pretrained=True), ds.x, ds.y, "deepaugment", cfg)
    out = T.robustify_teacher("resnet20_cifar", "deepaugment", 0, cfg, ds.x, ds.y, tmp_path / "t.pt", progress=False)
    assert out.finished and out.epochs_done == 1 and (tmp_path / "t.pt").is_file()
    assert out.images_seen == 288 and out.views_per_image == 2 and out.train_s > 0
    after = _loss_on_views(out.model, ds.x, ds.y, "deepaugment", cfg)
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("scheme", ["augmix", "augmix_deepaugment"])
def test_resume_gives_the_same_weights(tmp_path, train_small, scheme):
    cfg = TeachersConfig(epochs=2, lr=0.05, batch_size=40)
    x, y = train_small.x, train_small.y
    full = T.robustify_teacher("resnet20_cifar", scheme, 1, cfg, x, y, tmp_path / "full.pt", progress=False)
    part = T.robustify_teacher("resnet20_cifar", scheme, 1, cfg, x, y, tmp_path / "cut.pt", max_epochs=1, progress=False)
    assert not part.finished and part.epochs_done == 1 and not (tmp_path / "cut.pt").exists()
    assert T.state_path(tmp_path / "cut.pt").is_file()
    torch.manual_seed(999)  # a fresh process would have another global RNG state
    resumed = T.robustify_teacher("resnet20_cifar", scheme, 1, cfg, x, y, tmp_path / "cut.pt", progress=False)
    assert resumed.finished and resumed.epochs_done == 2
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.epoch_loss == full.epoch_loss
    loaded = T.load_teacher(tmp_path / "cut.pt")
    assert all(torch.equal(loaded.state_dict()[k], b[k]) for k in b)


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path, train_small):
    cfg = TeachersConfig(epochs=2, lr=0.05, batch_size=40)
    out = tmp_path / "t.pt"
    T.robustify_teacher("resnet20_cifar", "pixmix", 0, cfg, train_small.x, train_small.y, out, max_epochs=1, progress=False)
    good = torch.load(T.state_path(out), weights_only=True)
    model = create_model("resnet20_cifar", pretrained=True)
    forward = model.forward
    model.forward = lambda inp: forward(inp) * float("nan")
    with pytest.raises(TrainingError) as e:
        T.robustify_teacher("resnet20_cifar", "pixmix", 0, cfg, train_small.x, train_small.y, out, model=model, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "epoch 2" in msg and "last good state" in msg and "teachers.lr" in msg
    kept = torch.load(T.state_path(out), weights_only=True)
    assert kept["epoch"] == 1 and all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])
    assert not out.exists()


def test_load_teacher_rejects_other_files(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not a robust-teacher file"):
        T.load_teacher(bad)
    with pytest.raises(CheckpointError, match="not found"):
        T.load_teacher(tmp_path / "missing.pt")


def test_cli_unknown_scheme_one_line(capsys):
    from robustify.cli import main

    rc = main(["robustify-teacher", "--params", str(ROOT / "params.yaml"), "--teacher", "resnet20_cifar", "--scheme", "pixmax"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "unknown augmentation scheme 'pixmax'" in err[0] and "did you mean 'pixmix'" in err[0]


def test_config_rejects_unknown_scheme():
    from robustify.config import ConfigError, load_params, validate

    raw = load_params(ROOT / "params.yaml").model_dump(mode="json")
    raw["teachers"]["schemes"] = ["augmix", "deep_augment"]
    with pytest.raises(ConfigError, match="unknown scheme 'deep_augment'; did you mean 'deepaugment'"):
        validate(raw)


@pytest.mark.parametrize("test_c", [1, 0])
def test_cli_end_to_end_tiny(tmp_path, monkeypatch, caplog, test_c):
    """The real command on a tiny budget: record with clean/C/gap metrics, teacher file, state removed;
    with teachers.test_c_per_class 0 (the workflow's default) the record has no C estimate of its own."""
    from robustify.cli import main

    caplog.set_level(logging.INFO, logger="robustify")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    preset = tmp_path / "tiny.yaml"
    preset.write_text("threads: 1\nteachers:\n  epochs: 1\n  batch_size: 25\n  train_per_class: 5\n"
                      f"  test_c_per_class: {test_c}\n  val_c_per_class: 1\n  severities: [3]\n")
    da = tmp_path / "da.npz"
    assert main(["deepaugment", "--params", str(ROOT / "params.yaml"), "--configfile", str(preset), "--split", "val",
                 "--out", str(da)]) == 0
    with np.load(da) as f:
        assert f["x"].shape == (1000, 32, 32, 3) and f["x"].dtype == np.uint8
    out, rec = tmp_path / "t.pt", tmp_path / "t.json"
    rc = main(["robustify-teacher", "--params", str(ROOT / "params.yaml"), "--configfile", str(preset),
               "--teacher", "resnet20_cifar", "--scheme", "augmix", "--out", str(out), "--record", str(rec)])
    assert rc == 0 and out.is_file() and not T.state_path(out).exists()
    r = json.loads(rec.read_text())
    assert r["run"]["stage"] == "teachers" and r["run"]["scheme"] == "augmix" and r["run"]["teacher"] == "resnet20_cifar"
    m = r["metrics"]
    assert 0.8 < m["clean"] <= 1
    if test_c:
        assert 0 <= m["c_mean"] <= 1 and len(m["c_per_corruption"]) == 15 and m["c_test_images"] == 10
    else:
        assert not {"c_mean", "c_per_corruption", "c_cells", "c_test_images"} & set(m)
        assert "teachers.test_c_per_class: 0" in caplog.text
    assert m["val_robustness_gap"] == pytest.approx(m["val_c_mean"] - m["val_c_mean_student"])
    assert r["timing"]["images_seen"] == 50 and r["timing"]["s_per_image"] > 0


def test_classifier_predicts_as_the_eager_model_and_traces_once(monkeypatch):
    """The frozen-graph Classifier the teacher record uses gives the eager model's labels (68 images: two
    full batches of 32 through the graph, the last 4 eager), and traces one graph for all its sets."""
    from robustify.models import frozen

    traced = []
    real = frozen._frozen_graph
    monkeypatch.setattr(frozen, "_frozen_graph", lambda *a, **k: traced.append(1) or real(*a, **k))
    model = create_model("resnet8_cifar", num_classes=10)
    pre = Preprocess.for_model("resnet8_cifar")
    x = np.random.default_rng(0).integers(0, 256, (68, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        eager = model(pre(torch.from_numpy(x))).argmax(1).numpy()
    clf = T.Classifier(model, pre)
    np.testing.assert_array_equal(clf.predict(x), eager)
    assert clf.accuracy(x, eager) == 1.0 and clf.accuracy(x[:40], (eager[:40] + 1) % 10) == 0.0
    assert clf.fn.frozen and len(traced) == 1


def test_record_c_estimate_uses_the_evaluated_corrupted_copies(tmp_path):
    """Why the workflow sets teachers.test_c_per_class: 0. The record's estimate corrupts the first N test
    images of each class as `robustify corrupt` does for the C suite that evaluate/teachers reads (same
    images, labels, engine, table, seed), so the two C accuracies are one measurement made twice."""
    from robustify.cli import main
    from robustify.config import load_params
    from robustify.data.splits import split as data_split
    from robustify.evaluate import suites as S

    params = load_params(ROOT / "params.yaml")
    cc = params.corruptions
    assert main(["corrupt", "--params", str(ROOT / "params.yaml"), "--dataset", "cifar10_test", "--subset", "2",
                 "--corruptions", "fog", "shot_noise", "--severities", "2", "5", "--out", str(tmp_path / "c")]) == 0
    sub = data_split(params.data, "test").head(2)  # what the teacher command corrupts at test_c_per_class 2
    for es in S.corrupted_suite("c", tmp_path / "c", [2, 5], ["fog", "shot_noise"]):
        x, y = map(np.concatenate, zip(*es.batches(7)))
        c, s = es.tags["corruption"], es.tags["severity"]
        assert np.array_equal(y, sub.y)
        assert np.array_equal(x, T.corrupt_images(sub.x, c, s, params.teachers.corruption_seed, cc.table, cc.engine))
