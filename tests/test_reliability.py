"""Issue 11, bad input: every mistake a user can make ends in exit 2, one line naming the problem and
the fix, no traceback, and no output left behind. Plus NaN loss (last good checkpoint kept), a missing
MLflow store (job succeeds with a warning) and tampered generated files (sha256 verified when read).

Each case builds its inputs in tmp and returns (argv, outputs that must not exist, expected text).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from conftest import MIRROR, one_error_line

ROOT = Path(__file__).resolve().parents[1]
PARAMS = str(ROOT / "params.yaml")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default outputs (results/, data/) land in tmp
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def preset(tmp: Path, text: str = "", name: str = "p.yaml") -> str:
    p = tmp / name
    p.write_text(f"threads: 1\ndata: {{root: {tmp}/data, val_per_class: 2}}\n" + text)
    return str(p)


def npz(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    with open(path, "wb") as f:
        np.savez(f, x=x, y=y)
    return str(path)


def images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def teacher_file(path: Path, arch: str = "resnet20_cifar", name: str = "resnet20_cifar") -> str:
    from robustify.io import save_torch
    from robustify.models import create_model

    save_torch(path, {"teacher": name, "scheme": "augmix", "seed": 0, "epochs": 1, "num_classes": 10,
                      "model": create_model(arch).state_dict()})
    return str(path)


def out_args(tmp: Path, *flags: str) -> tuple[list[str], list[Path]]:
    """--out/--record (or other flags) pointing into tmp, and the paths that must stay absent."""
    paths = [tmp / "o" / f"{f.strip('-')}.{'json' if 'record' in f else 'pt'}" for f in flags]
    argv = [a for f, p in zip(flags, paths) for a in (f, str(p))]
    return argv, paths


def cfg_case(section_yaml: str, expect: str, cmd: str = "linear-probe") -> Callable:
    """A params mistake in a preset, caught by a real stage command before any work."""
    def make(tmp: Path):
        argv_cmd = {
            "linear-probe": ["linear-probe", "--student", "efficientnet_lite0"],
            "robustify-teacher": ["robustify-teacher", "--teacher", "resnet20_cifar", "--scheme", "augmix"],
            "distill": ["distill", "--student", "resnet20_cifar", "--teacher", "resnet20_cifar", "--scheme", "augmix",
                        "--variant", "full"],
            "corrupt": ["corrupt", "--dataset", "cifar10_test"],
        }[cmd]
        if cmd == "corrupt":
            extra, outs = ["--out", str(tmp / "o" / "c")], [tmp / "o" / "c" / "manifest.json"]
        else:
            extra, outs = out_args(tmp, "--out", "--record")
        return ["--params", PARAMS, "--configfile", preset(tmp, section_yaml)] + argv_cmd[1:] + extra, cmd, outs, expect
    return make


def cli_case(cmd: str, args: list, expect: str, outs=("--out", "--record")) -> Callable:
    def make(tmp: Path):
        extra, paths = out_args(tmp, *outs)
        argv = [a(tmp) if callable(a) else a for a in args]
        return ["--params", PARAMS, "--configfile", preset(tmp)] + argv + extra, cmd, paths, expect
    return make


# ---------------------------------------------------------------------------------------------
# inputs that need files


def _missing_mirror_file(tmp: Path):
    mirror = tmp / "mirror"
    mirror.mkdir()
    shutil.copy(MIRROR / "MANIFEST.json", mirror)
    os.environ["ROBUSTIFY_DATA_MIRROR"] = str(mirror)  # restored by the test
    extra, paths = out_args(tmp, "--out", "--record")
    return ["--params", PARAMS, "--configfile", preset(tmp), "--teacher", "resnet20_cifar", "--scheme", "augmix"] + extra, \
        "robustify-teacher", paths, "cifar10.npz is missing from the data mirror"


def _checksum_mismatch(tmp: Path):
    mirror = tmp / "mirror"
    mirror.mkdir()
    for f in MIRROR.iterdir():
        (mirror / f.name).symlink_to(f)
    (mirror / "resnet20-12fca82f.th").unlink()
    blob = bytearray((MIRROR / "resnet20-12fca82f.th").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte
    (mirror / "resnet20-12fca82f.th").write_bytes(bytes(blob))
    os.environ["ROBUSTIFY_DATA_MIRROR"] = str(mirror)
    data = npz(tmp / "d.npz", images(), np.arange(4))
    return ["--params", PARAMS, "--configfile", preset(tmp), "--pretrained", "resnet20_cifar", "--data", data,
            "--record", str(tmp / "o" / "r.json"), "--out-dir", str(tmp / "o" / "eval")], \
        "evaluate", [tmp / "o" / "r.json"], "sha256"


def _eval_data(x: np.ndarray, y: np.ndarray, expect: str, truncate: bool = False) -> Callable:
    def make(tmp: Path):
        data = npz(tmp / "d.npz", x, y)
        if truncate:
            blob = Path(data).read_bytes()
            Path(data).write_bytes(blob[: len(blob) // 2])
        return ["--params", PARAMS, "--configfile", preset(tmp), "--pretrained", "resnet20_cifar", "--data", data,
                "--record", str(tmp / "o" / "r.json"), "--out-dir", str(tmp / "o" / "eval")], \
            "evaluate", [tmp / "o" / "r.json"], expect
    return make


def _eval_model(make_file: Callable[[Path], str], expect: str) -> Callable:
    def make(tmp: Path):
        data = npz(tmp / "d.npz", images(), np.arange(4))
        return ["--params", PARAMS, "--configfile", preset(tmp), "--model", make_file(tmp), "--data", data,
                "--record", str(tmp / "o" / "r.json"), "--out-dir", str(tmp / "o" / "eval")], \
            "evaluate", [tmp / "o" / "r.json"], expect
    return make


def _garbage(tmp: Path) -> str:
    (tmp / "garbage.pt").write_bytes(b"not a checkpoint" * 100)
    return str(tmp / "garbage.pt")


def _truncated_teacher(tmp: Path) -> str:
    path = Path(teacher_file(tmp / "t.pt"))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    (tmp / "t.pt.sha256").unlink()  # a plain truncated file, not a checksum case
    return str(path)


def _tampered_teacher(tmp: Path) -> str:
    path = Path(teacher_file(tmp / "t.pt"))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # inside the tensor data: torch.load reads it without complaint
    path.write_bytes(bytes(blob))
    return str(path)


def _distill_teacher(make_file: Callable[[Path], str], expect: str) -> Callable:
    def make(tmp: Path):
        extra, paths = out_args(tmp, "--out", "--record")
        return ["--params", PARAMS, "--configfile", preset(tmp, "distill: {train_per_class: 1, views_per_image: 1, epochs: 1, "
                                                          "n_tunable_blocks: {resnet20_cifar: 1}}\n"),
                "--student", "resnet20_cifar", "--teacher", "resnet20_cifar", "--scheme", "augmix", "--variant", "full",
                "--teacher-checkpoint", make_file(tmp)] + extra, "distill", paths + [tmp / "data" / "cache"], expect
    return make


def _tampered_pool(tmp: Path):
    from robustify.io import save_npz

    pool = tmp / "pool.npz"
    save_npz(pool, x=images(8), y=np.arange(8) % 10)
    blob = bytearray(pool.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    pool.write_bytes(bytes(blob))
    extra, paths = out_args(tmp, "--out", "--record")
    return ["--params", PARAMS, "--configfile", preset(tmp), "--teacher", "resnet20_cifar", "--scheme", "deepaugment",
            "--deepaugment", str(pool)] + extra, "robustify-teacher", paths, "differs from the"


def _pool_wrong_shape(tmp: Path):
    from robustify.io import save_npz

    pool = tmp / "pool.npz"
    save_npz(pool, x=images(8), y=np.arange(8) % 10)
    extra, paths = out_args(tmp, "--out", "--record")
    return ["--params", PARAMS, "--configfile", preset(tmp), "--teacher", "resnet20_cifar", "--scheme", "deepaugment",
            "--deepaugment", str(pool)] + extra, "robustify-teacher", paths, "regenerate it"


def _tampered_chunk(tmp: Path):
    """A CIFAR-10-C chunk changed after `robustify corrupt` wrote it: evaluate refuses it before any model runs."""
    from robustify.cli import main

    src = npz(tmp / "src.npz", images(4), np.arange(4))
    root = tmp / "data" / "cifar10_c"
    assert main(["corrupt", "--params", PARAMS, "--configfile", preset(tmp), "--dataset", src, "--out", str(root),
                 "--corruptions", "fog", "--severities", "1"]) == 0
    chunk = root / "fog" / "1" / "00000.npz"
    blob = bytearray(chunk.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    chunk.write_bytes(bytes(blob))
    p = preset(tmp, "evaluate: {c_severities: [1], c_corruptions: [fog]}\n", "e.yaml")
    return ["--params", PARAMS, "--configfile", p, "--pretrained", "resnet20_cifar", "--suite", "c",
            "--record", str(tmp / "o" / "r.json"), "--out-dir", str(tmp / "o" / "eval")], \
        "evaluate", [tmp / "o" / "r.json"], "rerun `robustify corrupt`"


def _bad_preset(text: str, expect: str) -> Callable:
    def make(tmp: Path):
        bad = tmp / "bad.yaml"
        bad.write_text(text)
        extra, paths = out_args(tmp, "--out", "--record")
        return ["--params", PARAMS, "--configfile", str(bad), "--student", "efficientnet_lite0"] + extra, \
            "linear-probe", paths, expect
    return make


def _missing_teacher(tmp: Path):
    return _distill_teacher(lambda t: str(t / "nowhere.pt"), "robust teacher not found")(tmp)


CASES: dict[str, Callable] = {
    # params keys, types, ranges, names (in presets, caught by real stage commands before any work)
    "unknown_top_level_key": cfg_case("seedz: [1]\n", "unknown key 'seedz'; did you mean 'seeds'?"),
    "mistyped_nested_key": cfg_case("teachers: {epoch: 2}\n", "did you mean 'epochs'?", "robustify-teacher"),
    "wrong_type": cfg_case("distill: {epochs: three}\n", "distill.epochs", "distill"),
    "out_of_range": cfg_case("distill: {dropout: 1.5}\n", "distill.dropout", "distill"),
    "negative_weight_decay": cfg_case("linear_probe: {weight_decays: [-1.0]}\n", "weight decays must be >= 0"),
    "severity_out_of_range": cfg_case("corruptions: {severities: [6]}\n", "severities must be within 1..5", "corrupt"),
    "unknown_model_in_params": cfg_case("models: {students: [resnet57_cifar], teachers: [resnet20_cifar]}\n",
                                        "did you mean 'resnet56_cifar'?"),
    "gap_student_without_weights": cfg_case("teachers: {gap_student: resnet8_cifar}\n", "resnet8_cifar has no pretrained weights",
                                            "robustify-teacher"),
    "missing_weight_file": cfg_case("models: {weights: {resnet20_cifar: /nowhere/w.th}}\n", "/nowhere/w.th: checkpoint not found",
                                    "robustify-teacher"),
    "inconsistent_sections": cfg_case("models: {students: [resnet56_cifar]}\n",
                                      "linear_probe.students ['efficientnet_lite0'] are not in models.students ['resnet56_cifar']; fix"),
    "unknown_scheme_in_params": cfg_case("teachers: {schemes: [pixmax]}\n", "did you mean 'pixmix'?", "robustify-teacher"),
    "unknown_corruption_in_params": cfg_case("corruptions: {names: [fogg]}\n", "did you mean 'fog'?", "corrupt"),
    # names on the command line
    "unknown_teacher": cli_case("robustify-teacher", ["--teacher", "resnet21_cifar", "--scheme", "augmix"],
                                "unknown model 'resnet21_cifar'; did you mean"),
    "unknown_scheme": cli_case("robustify-teacher", ["--teacher", "resnet20_cifar", "--scheme", "augmax"],
                               "unknown augmentation scheme 'augmax'; did you mean 'augmix'?"),
    "unknown_student": cli_case("linear-probe", ["--student", "efficientnet_lite9"], "unknown model 'efficientnet_lite9'"),
    "unknown_distill_student": cli_case("distill", ["--student", "resnet57_cifar", "--teacher", "resnet20_cifar",
                                                    "--scheme", "augmix", "--variant", "full"], "invalid choice: 'resnet57_cifar'"),
    "full_distill_without_teacher": cli_case("distill", ["--student", "resnet20_cifar", "--teacher", "none",
                                                         "--scheme", "augmix", "--variant", "full"],
                                             "variant full distils a teacher; pass --teacher NAME"),
    "unknown_corruption": cli_case("corrupt", ["--dataset", "cifar10_test", "--corruptions", "gausian_noise"],
                                   "did you mean 'gaussian_noise'?", outs=("--out",)),
    "unknown_pretrained_model": cli_case("evaluate", ["--pretrained", "resnet99_cifar", "--suite", "clean"],
                                         "unknown model 'resnet99_cifar'", outs=("--record",)),
    "unknown_suite": cli_case("evaluate", ["--pretrained", "resnet20_cifar", "--suite", "cleen"],
                              "unknown suite 'cleen'; did you mean 'clean'?", outs=("--record",)),
    "zero_chunk_size": cli_case("corrupt", ["--dataset", "cifar10_test", "--corruptions", "fog", "--chunk-size", "0"],
                                "--chunk-size must be ≥ 1", outs=("--out",)),
    "image_size_out_of_range": cli_case("linear-probe", ["--student", "efficientnet_lite0", "--image-size", "0"],
                                        "argument --image-size: 0 is outside 16..1024"),
    "negative_threads": cli_case("linear-probe", ["--student", "efficientnet_lite0", "--threads", "-3"],
                                 "argument --threads: -3 is outside 0..256"),
    # data files
    "missing_data_file": cli_case("evaluate", ["--pretrained", "resnet20_cifar", "--data", lambda t: str(t / "nope.npz")],
                                  "no such dataset file", outs=("--record",)),
    "truncated_data_file": _eval_data(images(), np.arange(4), "truncated or corrupt", truncate=True),
    "empty_dataset": _eval_data(images(0), np.zeros(0, np.int64), "the dataset is empty"),
    "label_out_of_range": _eval_data(images(), np.array([0, 1, 2, 10]), "label 10 outside 0..9"),
    "images_not_uint8": _eval_data(images().astype(np.float32), np.arange(4), "images must be uint8"),
    "missing_mirror_file": _missing_mirror_file,
    "checksum_mismatch_raw": _checksum_mismatch,
    "deepaugment_pool_wrong_shape": _pool_wrong_shape,
    # checkpoints
    "corrupt_checkpoint": _eval_model(_garbage, "not a readable torch checkpoint"),
    "wrong_architecture_checkpoint": _eval_model(lambda t: teacher_file(t / "t.pt", arch="resnet56_cifar"), "does not fit model"),
    "wrong_architecture_teacher": _distill_teacher(lambda t: teacher_file(t / "t.pt", arch="resnet56_cifar"), "does not fit model"),
    "truncated_teacher_checkpoint": _distill_teacher(_truncated_teacher, "not a readable torch checkpoint"),
    "missing_teacher_checkpoint": _missing_teacher,
    # generated files whose sha256 no longer matches (issue 11 §5)
    "tampered_checkpoint": _distill_teacher(_tampered_teacher, "differs from the"),
    "tampered_deepaugment_pool": _tampered_pool,
    "tampered_corruption_chunk": _tampered_chunk,
    # outputs
    "unwritable_record_dir": cli_case("linear-probe", ["--student", "efficientnet_lite0", "--record", "/etc/hostname/x/r.json"],
                                      "cannot create /etc/hostname/x", outs=()),
    "unwritable_corrupt_out": cli_case("corrupt", ["--dataset", "cifar10_test", "--corruptions", "fog", "--out", "/proc/nope/c"],
                                       "/proc/nope/c", outs=()),
    "unwritable_teacher_out": cli_case("robustify-teacher", ["--teacher", "resnet20_cifar", "--scheme", "augmix",
                                                             "--out", "/etc/hostname/t.pt"], "/etc/hostname", outs=("--record",)),
    # preset files
    "invalid_preset_yaml": _bad_preset("teachers: [epochs: 1\n", "is not valid YAML"),
    "preset_not_a_mapping": _bad_preset("- seeds\n- 1\n", "top level must be a mapping"),
    "missing_preset": lambda tmp: (["--params", PARAMS, "--configfile", str(tmp / "nope.yaml"), "--student", "efficientnet_lite0"],
                                   "linear-probe", [], "no such parameter file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line(case, tmp_path, capsys, monkeypatch):
    from robustify.cli import main
    from robustify.data import mirror

    monkeypatch.setenv("ROBUSTIFY_DATA_MIRROR", os.environ["ROBUSTIFY_DATA_MIRROR"])  # cases may repoint it
    monkeypatch.setattr(mirror, "_verified", {})
    argv, cmd, outputs, expect = CASES[case](tmp_path)
    capsys.readouterr()
    try:
        code = main([cmd] + [str(a) for a in argv])
    except SystemExit as e:  # argparse choices
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    line = one_error_line(err)
    assert line.startswith(f"robustify {cmd}: error:"), line
    assert expect in line, line
    assert len(line) < 400, f"not one readable line: {line[:600]}"
    assert any(m in line for m in (";", "invalid choice", "argument --", " must ")), f"no fix named: {line}"  # problem; fix
    for path in outputs:
        assert not Path(path).exists(), f"{path} left behind"
    assert not list(tmp_path.rglob("*.tmp")), "temporary file left behind"
    left = [p for p in (tmp_path / "o").rglob("*") if p.is_file()] if (tmp_path / "o").is_dir() else []
    assert not left, f"output directory not empty: {left}"  # no state file, sidecar or partial output either


def test_at_least_twenty_distinct_cases():
    assert len(CASES) >= 20


# ---------------------------------------------------------------------------------------------
# NaN loss: a clear line, the last good checkpoint kept, no final output


def _nan_after(monkeypatch, module, name: str, good_calls: int):
    """Patch module.name (a loss) to return NaN after `good_calls` calls."""
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapped(*a, **kw):
        out = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] > good_calls:
            loss, *rest = out if isinstance(out, tuple) else (out,)
            loss = loss * float("nan")
            return (loss, *rest) if isinstance(out, tuple) else loss
        return out

    monkeypatch.setattr(module, name, wrapped)


def test_nan_loss_in_teacher_training_keeps_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    from robustify.cli import main
    from robustify.train import teacher as T

    real_loss_fn = T._loss_fn
    calls = {"n": 0}

    def loss_fn(scheme, lam):
        f = real_loss_fn(scheme, lam)

        def g(logits, y):
            calls["n"] += 1
            out = f(logits, y)
            return out * float("nan") if calls["n"] > 2 else out  # epoch 1 (2 steps) fine, epoch 2 diverges
        return g

    monkeypatch.setattr(T, "_loss_fn", loss_fn)
    p = preset(tmp_path, "teachers: {epochs: 2, batch_size: 10, train_per_class: 2}\n")
    out, rec = tmp_path / "t.pt", tmp_path / "t.json"
    code = main(["robustify-teacher", "--params", PARAMS, "--configfile", p, "--teacher", "resnet20_cifar", "--scheme", "augmix",
                 "--out", str(out), "--record", str(rec)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "loss became nan at epoch 2" in line and "lower teachers.lr" in line, line
    assert not out.exists() and not rec.exists()
    state = torch.load(T.state_path(out), weights_only=False)
    assert state["epoch"] == 1 and str(T.state_path(out)) in line


def test_nan_loss_in_distillation_keeps_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    from robustify.cli import main
    from robustify.train import distill as D

    _nan_after(monkeypatch, D, "step_loss", 3)  # 20 images, batch 8: 3 steps per epoch; epoch 2 diverges
    p = preset(tmp_path, "distill: {epochs: 2, views_per_image: 1, batch_size: 8, train_per_class: 2, "
                         "n_tunable_blocks: {resnet20_cifar: 1}}\n")
    out, rec = tmp_path / "s.pt", tmp_path / "s.json"
    code = main(["distill", "--params", PARAMS, "--configfile", p, "--student", "resnet20_cifar", "--teacher", "resnet20_cifar",
                 "--scheme", "augmix", "--variant", "no_kd", "--out", str(out), "--record", str(rec)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "non-finite loss at epoch 2" in line and "lower distill.lr" in line, line
    assert not out.exists() and not rec.exists()
    resume = Path(str(out) + ".resume")
    assert torch.load(resume, weights_only=False)["epoch"] == 1


# ---------------------------------------------------------------------------------------------
# MLflow is a side channel: a store that cannot be opened costs a warning, never the job


def test_missing_mlflow_store_directory_only_warns(tmp_path, capsys, caplog, monkeypatch):
    from robustify.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/dir/mlflow.db")
    data = npz(tmp_path / "d.npz", images(), np.arange(4))
    rec = tmp_path / "r.json"
    code = main(["evaluate", "--params", PARAMS, "--configfile", preset(tmp_path), "--pretrained", "resnet20_cifar",
                 "--data", data, "--record", str(rec), "--out-dir", str(tmp_path / "eval")])
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "Traceback" not in err and "error:" not in err
    assert any("MLflow logging skipped" in w and "/nonexistent/dir does not exist" in w and "sync-mlflow" in w for w in warnings), warnings
    assert json.loads(rec.read_text())["run"]["stage"] == "evaluate"
    assert not Path("/nonexistent").exists()


def test_closed_stdout_pipe_is_not_a_traceback(tmp_path):
    """`robustify check-config | head -n 0`: the reader is gone before the first write; no traceback."""
    import subprocess

    from conftest import VENV_BIN

    res = subprocess.run(f"'{VENV_BIN}/robustify' check-config --params '{PARAMS}' | head -n 0", shell=True, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert "Traceback" not in res.stderr and "Error" not in res.stderr, res.stderr
