"""Suites: class masks and the ObjectNet mapping on synthetic cases, folder/corrupted-copy readers,
the embedded PACS analogues, and `robustify evaluate` end to end on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustify.errors import DataError
from robustify.evaluate import suites as S

MIRROR = "/work/shared/data"
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(autouse=True)
def _mirror(monkeypatch):
    import os

    monkeypatch.setenv("ROBUSTIFY_DATA_MIRROR", os.environ.get("ROBUSTIFY_DATA_MIRROR", MIRROR))


# ---------------------------------------------------------------------------------------------
# mappings and masks


def test_objectnet_mapping_synthetic():
    # 4 ImageNet classes; the 2012-id order differs from the PyTorch order
    pytorch_to_2012 = {"0": 2, "1": 0, "2": 3, "3": 1}
    names_2012 = ["cat", "dog", "car", "boat"]  # 2012 id 0 = cat (pytorch 1), 1 = dog (pytorch 3), 2 = car (pytorch 0), 3 = boat (pytorch 2)
    folder_to_objectnet = {"pets_folder": "Pet", "vehicle_folder": "Vehicle", "unmapped": "Chair"}
    objectnet_to_imagenet = {"Vehicle": "car; boat", "Pet": "dog"}
    m = S.objectnet_mapping(folder_to_objectnet, objectnet_to_imagenet, pytorch_to_2012, names_2012)
    assert m.folders == ("pets_folder", "vehicle_folder")
    assert m.imagenet_ids == ((3,), (0, 2))
    assert m.class_sublist == (0, 2, 3)
    assert m.folder_to_label == {"pets_folder": 0, "vehicle_folder": 1}
    with pytest.raises(DataError, match="no counterpart"):
        S.objectnet_mapping(folder_to_objectnet, {"Pet": "wolf"}, pytorch_to_2012, names_2012)


def test_names_in_2012_order_inverts_the_permutation():
    assert S.names_in_2012_order({"0": 2, "1": 0, "2": 1}, ["a", "b", "c"]) == ["b", "c", "a"]


def test_max_logits_projection():
    logits = torch.tensor([[1.0, 5.0, 2.0, 0.0], [3.0, 0.0, 0.0, 4.0]])
    out = S.max_logits([(3,), (0, 2), (1, 3)])(logits)
    torch.testing.assert_close(out, torch.tensor([[0.0, 2.0, 5.0], [4.0, 3.0, 4.0]]))


def test_mask_logits_and_200_class_masks():
    torch.testing.assert_close(S.mask_logits(np.array([2, 0]))(torch.tensor([[1.0, 2.0, 3.0]])), torch.tensor([[3.0, 1.0]]))
    for wnids in (S.imagenet_r_wnids(), S.imagenet_a_wnids()):
        idx = S.subset_mask(wnids)
        assert len(idx) == 200 and len(set(idx.tolist())) == 200 and (np.diff(idx) > 0).all()
    assert S.imagenet_synsets()[0] == "n01440764" and len(S.imagenet_synsets()) == 1000
    with pytest.raises(DataError):
        S.subset_mask(["n00000000"])


def test_shipped_objectnet_mapping():
    m = S.shipped_objectnet_mapping()
    assert len(m.folders) == 113
    lemmas = S.imagenet_lemmas()
    alarm = m.imagenet_ids[m.folders.index("alarm_clock")]
    assert sorted(lemmas[i] for i in alarm) == ["analog clock", "digital clock"]
    assert set(m.class_sublist) == {i for ids in m.imagenet_ids for i in ids}


# ---------------------------------------------------------------------------------------------
# readers


def _write_images(root, folders, n=2, size=20):
    from PIL import Image

    for k, f in enumerate(folders):
        (root / f).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((size, size + 4, 3), 10 * k + i, np.uint8)).save(root / f / f"{i}.png")


class _Cfg:
    per_class = None
    c_severities = [1, 2]
    c_corruptions: list = []
    imagenet_names_2012 = None

    def __init__(self, **paths):
        self.paper_paths = {k: str(v) for k, v in paths.items()}


def test_paper_folder_suites(tmp_path):
    r_wnids = S.imagenet_r_wnids()
    _write_images(tmp_path / "r", [r_wnids[5], r_wnids[0], "n99999999"])
    _write_images(tmp_path / "on", ["banana", "alarm_clock", "not_a_class"])
    _write_images(tmp_path / "c" / "fog" / "1", ["n01440764"], n=1)
    _write_images(tmp_path / "c" / "fog" / "2", ["n01440764"], n=1)
    cfg = _Cfg(imagenet_r=tmp_path / "r", imagenet_objectnet=tmp_path / "on", imagenet_c=tmp_path / "c")
    (r,) = S.paper_suite("imagenet_r", cfg, 16)
    x, y = next(r.batches(10))
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.uint8
    assert sorted(y.tolist()) == [0, 0, 5, 5] and r.num_classes == 200
    assert r.project(torch.zeros(1, 1000)).shape == (1, 200)
    (on,) = S.paper_suite("imagenet_objectnet", cfg, 16)
    _, y = next(on.batches(10))
    m = S.shipped_objectnet_mapping()
    assert sorted(set(y.tolist())) == [m.folders.index("alarm_clock"), m.folders.index("banana")]
    assert on.project(torch.zeros(2, 1000)).shape == (2, 113)
    c = S.paper_suite("imagenet_c", cfg, 16)
    assert [(e.tags["corruption"], e.tags["severity"]) for e in c] == [("fog", 1), ("fog", 2)]
    cfg.per_class = 1
    (r1,) = S.paper_suite("imagenet_r", cfg, 16)
    assert r1.size == 2
    with pytest.raises(Exception, match="paper_paths"):
        S.paper_suite("imagenet_a", cfg, 16)


def _write_corrupted(root, with_manifest=True):
    """The layout `robustify corrupt` writes: root/<c>/<s>/<chunk:05d>.npz + manifest.json (last)."""
    rng = np.random.default_rng(0)
    cells = []
    for c in ("fog", "snow"):
        for s in (1, 2):
            files = []
            for chunk in (0, 1):
                rel = f"{c}/{s}/{chunk:05d}.npz"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                np.savez(root / rel, x=rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8), y=np.array([0, 5, 7]))
                files.append({"file": rel, "sha256": "-", "count": 3})
            cells.append({"corruption": c, "severity": s, "count": 6, "files": files})
    if with_manifest:
        (root / "manifest.json").write_text(json.dumps({"cells": cells, "classes": []}))


def test_corrupted_copy_reader(tmp_path):
    _write_corrupted(tmp_path)
    cells = S.corrupted_cells(tmp_path)
    assert sorted(cells) == [("fog", 1), ("fog", 2), ("snow", 1), ("snow", 2)]
    sets = S.corrupted_suite("c", tmp_path, [2], ["snow"])
    assert [e.name for e in sets] == ["c/snow/2"] and sets[0].tags == {"corruption": "snow", "severity": 2}
    x, y = next(sets[0].batches(100))
    assert x.shape == (6, 8, 8, 3) and y.tolist() == [0, 5, 7, 0, 5, 7]
    assert len(S.corrupted_suite("c", tmp_path, [1, 2], [])) == 4  # empty list = every corruption
    with pytest.raises(DataError, match="not generated"):
        S.corrupted_suite("c", tmp_path, [1], ["zoom_blur"])
    (tmp_path / "fog/1/00001.npz").unlink()
    with pytest.raises(DataError, match="missing"):
        S.corrupted_suite("c", tmp_path, [1], ["fog"])


def test_corrupted_copy_incomplete(tmp_path):
    _write_corrupted(tmp_path, with_manifest=False)
    with pytest.raises(DataError, match="incomplete"):
        S.corrupted_cells(tmp_path)


def test_corrupted_copy_missing(tmp_path):
    with pytest.raises(DataError, match="robustify corrupt"):
        S.corrupted_cells(tmp_path / "nope")


def test_embedded_pacs_analogues():
    from robustify.data.datasets import CIFAR10_CLASSES

    class cfg:
        per_class = 3

    for name in ("r", "sketch", "objectnet"):
        (es,) = S.embedded_suite(name, cfg, "data")
        x, y = next(es.batches(100))
        assert es.shifted and es.classes == CIFAR10_CLASSES
        assert sorted(y.tolist()) == [5, 5, 5, 7, 7, 7] and x.shape[1:] == (64, 64, 3)


def test_user_set_errors(tmp_path):
    from robustify.data.datasets import CIFAR10_CLASSES

    with pytest.raises(DataError, match="no such dataset"):
        S.user_set(tmp_path / "missing.npz", CIFAR10_CLASSES, 32)
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0, 10]))
    with pytest.raises(DataError, match="label 10"):
        S.user_set(tmp_path / "bad.npz", CIFAR10_CLASSES, 32)


# ---------------------------------------------------------------------------------------------
# CLI end to end


@pytest.fixture()
def cli_env(tmp_path, monkeypatch):
    """A tiny single-head checkpoint, a tiny dataset and a params preset with quick settings."""
    from robustify.models import create_model

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    torch.save({"student": "resnet8_cifar", "state_dict": create_model("resnet8_cifar").state_dict(), "method": "e2e"}, ckpt)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x=rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 10, 12))
    preset = tmp_path / "preset.yaml"
    preset.write_text("threads: 1\nevaluate:\n  mc_passes: 3\n  batch_size: 8\n  c_severities: [1, 2]\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path, ckpt, preset


def _cli(*argv):
    from robustify.cli import main

    argv = [str(a) for a in argv]
    return main([argv[0], "--params", str(PARAMS), *argv[1:]])


def test_cli_evaluate_user_data_end_to_end(cli_env, capsys):
    tmp, ckpt, preset = cli_env
    rc = _cli("evaluate", "--configfile", preset, "--model", ckpt, "--data", tmp / "tiny.npz",
              "--out-dir", tmp / "eval", "--record", tmp / "rec.json")
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((tmp / "rec.json").read_text())
    assert rec["run"]["stage"] == "evaluate" and rec["run"]["student"] == "resnet8_cifar" and rec["run"]["method"] == "e2e"
    d = rec["metrics"]["datasets"]["tiny"]
    assert d["n"] == 12 and set(d["accuracy"]) == set(rec["metrics"]["rules"])
    assert len(set(d["accuracy"].values())) == 1 and d["u"] == {"single": 0.0}  # one head: every rule equal
    assert rec["metrics"]["suites"]["user"]["accuracy"]["ours"] == d["accuracy"]["ours"]
    assert rec["metrics"]["cost"]["gflops_plain"] > 0 and rec["flops"] == pytest.approx(rec["metrics"]["cost"]["gflops_ours"] * 1e9)
    assert rec["metrics"]["user"] == d["accuracy"]["ours"] and rec["metrics"]["transfer"] is None
    assert rec["metrics"]["fcorrect_shifted"] is None  # one head: nothing is routed
    assert (tmp / "eval" / "tiny.npz").is_file()
    # rerun reuses the per-sample file and gives the same numbers
    assert _cli("evaluate", "--configfile", preset, "--model", ckpt, "--data", tmp / "tiny.npz",
                "--out-dir", tmp / "eval", "--record", tmp / "rec2.json") == 0
    assert json.loads((tmp / "rec2.json").read_text())["metrics"]["datasets"] == rec["metrics"]["datasets"]


def test_cli_evaluate_distilled_student(cli_env, capsys):
    distill = pytest.importorskip("robustify.train.distill")
    from robustify.models.student import create_student

    tmp, _, preset = cli_env
    student = create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.2, pretrained=False)
    meta = distill.student_meta("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.2, image_size=32,
                                pretrained=False, teacher="resnet20_cifar", scheme="augmix")
    distill.save_student(tmp / "s.pt", student, meta)
    _write_corrupted(tmp / "data" / "cifar10_c")
    with open(preset, "a") as f:
        f.write(f"data:\n  root: {tmp / 'data'}\n")
    rc = _cli("evaluate", "--configfile", preset, "--model", tmp / "s.pt", "--suite", "c", "--data", tmp / "tiny.npz",
              "--classes", "cifar10", "--out-dir", tmp / "eval", "--record", tmp / "rec.json")
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((tmp / "rec.json").read_text())
    d = rec["metrics"]["datasets"]["tiny"]
    assert set(d["fcorrect"]) == {"ours", "no_kld", "no_uncertainty", "max_logit"} and d["kl"]["combined"] == 0
    assert rec["run"]["teacher"] == "resnet20_cifar" and rec["run"]["scheme"] == "augmix"
    assert rec["metrics"]["diagnostics"]["shifted"]["n"] == 12 + 4 * 6
    c = rec["metrics"]["suites"]["c"]
    assert c["datasets"] == 4 and set(c["by_severity"]) == {"1", "2"} and set(c["by_corruption"]) == {"fog", "snow"}
    cells = [rec["metrics"]["datasets"][f"c/{k}/{s}"]["accuracy"]["ours"] for k in ("fog", "snow") for s in (1, 2)]
    assert c["accuracy"]["ours"] == pytest.approx(np.mean(cells))
    assert c["by_severity"]["2"]["accuracy"]["ours"] == pytest.approx(np.mean(cells[1::2]))
    assert "fcorrect" in c["by_corruption"]["fog"]
    assert rec["metrics"]["c"] == c["accuracy"]["ours"] and 0 <= rec["metrics"]["fcorrect_shifted"] <= 1
    assert rec["metrics"]["fcorrect_clean"] is None  # no in-distribution dataset in this run
    shared = rec["artifacts"]["shared_trunk"]  # evaluate.share_trunk: the trunk's outputs went to the cache
    assert (shared["hits"], shared["misses"]) == (0, 5) and shared["dir"].startswith(str(tmp / "data" / "cache"))
    # another student with the same frozen trunk reads them, and keeps its own numbers
    other = create_student("resnet8_cifar", n_tunable_blocks=2, head_depth=1, dropout_p=0.2, pretrained=False)
    other.load_state_dict(student.state_dict())
    with torch.no_grad():
        for p in other.trainable_parameters():
            p.mul_(1.1)
    distill.save_student(tmp / "o.pt", other, meta)
    assert _cli("evaluate", "--configfile", preset, "--model", tmp / "o.pt", "--suite", "c", "--data", tmp / "tiny.npz",
                "--classes", "cifar10", "--out-dir", tmp / "eval_o", "--record", tmp / "rec_o.json") == 0
    rec_o = json.loads((tmp / "rec_o.json").read_text())
    assert (rec_o["artifacts"]["shared_trunk"]["hits"], rec_o["artifacts"]["shared_trunk"]["misses"]) == (5, 0)
    assert rec_o["metrics"]["datasets"] != rec["metrics"]["datasets"]
    # rerun into the first output directory: every per-dataset file is reused, so no trunk output is
    # needed — none is recomputed even with the trunk cache gone
    import shutil

    shutil.rmtree(shared["dir"])
    assert _cli("evaluate", "--configfile", preset, "--model", tmp / "s.pt", "--suite", "c", "--data", tmp / "tiny.npz",
                "--classes", "cifar10", "--out-dir", tmp / "eval", "--record", tmp / "rec_again.json") == 0
    again = json.loads((tmp / "rec_again.json").read_text())
    assert (again["artifacts"]["shared_trunk"]["hits"], again["artifacts"]["shared_trunk"]["misses"]) == (0, 0)
    assert again["metrics"]["datasets"] == rec["metrics"]["datasets"]


@pytest.mark.parametrize("case,needle", [("missing", "no such dataset file"), ("label", "label 12 outside 0..9"),
                                         ("classes", "--classes"), ("suite", "unknown suite")])
def test_cli_evaluate_bad_inputs_exit_2_one_line(cli_env, capsys, case, needle):
    tmp, ckpt, preset = cli_env
    np.savez(tmp / "bad.npz", x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0, 12]))
    extra = {"missing": ["--data", tmp / "absent.npz"], "label": ["--data", tmp / "bad.npz"],
             "classes": ["--data", tmp / "tiny.npz", "--classes", "cat"], "suite": ["--suite", "imagenet_x"]}[case]
    rc = _cli("evaluate", "--configfile", preset, "--model", ckpt, *extra, "--out-dir", tmp / "eval", "--record", tmp / "r.json")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and needle in err[-1] and err[-1].startswith("robustify evaluate: error:")
    assert not (tmp / "r.json").exists()


def test_user_set_subset_of_label_space_is_scored_in_it(tmp_path):
    from robustify.data.datasets import CIFAR10_CLASSES

    np.savez(tmp_path / "dh.npz", x=np.zeros((3, 8, 8, 3), np.uint8), y=np.array([0, 1, 1]))
    es = S.user_set(tmp_path / "dh.npz", ("dog", "horse"), 32)
    assert es.classes == CIFAR10_CLASSES and next(es.batches(8))[1].tolist() == [5, 7, 7]
    _write_images(tmp_path / "folder", ["horse", "dog", "elephant"], n=1)
    es = S.user_set(tmp_path / "folder", ("dog", "horse"), 16)
    x, y = next(es.batches(8))
    assert sorted(y.tolist()) == [5, 7] and x.shape == (2, 16, 16, 3)
    own = S.user_set(tmp_path / "dh.npz", ("a", "b"), 32)
    assert own.classes == ("a", "b") and next(own.batches(8))[1].tolist() == [0, 1, 1]


# ---------------------------------------------------------------------------------------------
# transfer probes


def test_pacs7_probe_and_retention_on_tiny_model():
    from robustify.evaluate.onepass import SingleHeadModel
    from robustify.evaluate.transfer import imagenet_retention, original_classifier, pacs7_probe
    from robustify.models import Preprocess, create_model

    torch.manual_seed(0)
    model = SingleHeadModel(create_model("resnet8_cifar"))
    pre = Preprocess.for_model("resnet8_cifar", 16)
    t = pacs7_probe(model, pre, "photo", 0.3, max_iter=20)
    assert t["n_test"] > 400 and t["n_train"] > 1000 and 100 / 7 < t["accuracy"] <= 100  # random features beat chance
    clf = torch.nn.Linear(64, 1000)
    r = imagenet_retention(model, pre, clf)
    assert r["n"] == 1000 and 0 <= r["top1"] <= 100
    assert original_classifier("resnet56_cifar") is None  # CIFAR students have no ImageNet task to retain


def test_teacher_checkpoint_loads_as_single_head(tmp_path):
    from robustify.config import load_params
    from robustify.evaluate.runner import load_model
    from robustify.models import create_model

    torch.save({"teacher": "resnet8_cifar", "scheme": "augmix", "seed": 0, "model": create_model("resnet8_cifar").state_dict()},
               tmp_path / "t.pt")
    loaded = load_model(str(tmp_path / "t.pt"), None, load_params(PARAMS))
    assert loaded.run == {"teacher": "resnet8_cifar", "scheme": "augmix", "method": "teacher"}
    assert loaded.image_size == 32 and loaded.model.HEADS == ("single",)
    torch.save({"something": 1}, tmp_path / "junk.pt")
    from robustify.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not a model checkpoint"):
        load_model(str(tmp_path / "junk.pt"), None, load_params(PARAMS))
