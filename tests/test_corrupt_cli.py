"""`robustify corrupt` end to end on tiny data: outputs, manifest, resume after an interrupted run, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from robustify.cli import main
from robustify.io import sha256_file

PARAMS = str(Path(__file__).resolve().parents[1] / "params.yaml")


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(np.arange(5), 2).astype(np.int64)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=x, y=y)
    return path, x, y


def run_cli(*args):
    return main(["corrupt", "--params", PARAMS, *map(str, args)])


def test_corrupt_writes_chunks_and_manifest_and_resumes(tiny_npz, tmp_path):
    path, x, y = tiny_npz
    out = tmp_path / "c"
    args = ["--dataset", path, "--out", out, "--corruptions", "fog", "contrast", "--severities", "1", "3", "--chunk-size", 4]
    assert run_cli(*args) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["n_images"] == 10 and m["table"] == "cifar" and m["engine"] == "ours" and m["seed"] == 0
    assert [(c["corruption"], c["severity"]) for c in m["cells"]] == [("fog", 1), ("fog", 3), ("contrast", 1), ("contrast", 3)]
    first = {}
    for cell in m["cells"]:
        assert [f["count"] for f in cell["files"]] == [4, 4, 2]
        parts = []
        for f in cell["files"]:
            assert sha256_file(out / f["file"]) == f["sha256"]
            with np.load(out / f["file"]) as a:
                parts.append(a["x"])
                assert a["x"].dtype == np.uint8 and np.array_equal(a["y"], y[a["index"]])
        first[(cell["corruption"], cell["severity"])] = np.concatenate(parts)
    assert not np.array_equal(first[("fog", 3)], x)

    # simulate a killed run: manifest not yet written, one chunk missing, one truncated, a stale temp file
    (out / "manifest.json").unlink()
    (out / "fog/3/00001.npz").unlink()
    (out / "contrast/1/00000.npz").write_bytes(b"truncated")
    stale = out / "fog/1/.00002.npz.abcd.tmp"
    stale.write_bytes(b"partial")
    untouched = out / "contrast/3/00002.npz"
    mtime = untouched.stat().st_mtime_ns
    os.utime(untouched, ns=(mtime - 10**9, mtime - 10**9))
    mtime = untouched.stat().st_mtime_ns

    assert run_cli(*args) == 0
    m2 = json.loads((out / "manifest.json").read_text())
    assert m2["cells"] == m["cells"]  # same files, same sha256: regenerated chunks are bit-identical
    assert untouched.stat().st_mtime_ns == mtime  # verified chunks are skipped, not rewritten
    assert not stale.exists()
    for cell in m2["cells"]:
        for f in cell["files"]:
            assert sha256_file(out / f["file"]) == f["sha256"]

    # other settings: everything is regenerated, the manifest says so
    assert run_cli(*args, "--seed", 7) == 0
    m3 = json.loads((out / "manifest.json").read_text())
    assert m3["seed"] == 7 and m3["cells"][0]["files"][0]["sha256"] != m["cells"][0]["files"][0]["sha256"]


def test_unknown_corruption_is_one_line(tiny_npz, tmp_path, capsys):
    path, _, _ = tiny_npz
    rc = run_cli("--dataset", path, "--out", tmp_path / "c", "--corruptions", "gausian_noise")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "did you mean 'gaussian_noise'" in err[0]
    assert not (tmp_path / "c" / "manifest.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--severities", "6"], "severity 6"),
    (["--table", "imagenet", "--engine", "reference", "--subset", "0"], "--subset"),
    (["--engine", "reference"], "only has the 'imagenet' table"),
])
def test_bad_arguments_are_one_line(tiny_npz, tmp_path, capsys, args, message):
    path, _, _ = tiny_npz
    rc = run_cli("--dataset", path, "--out", tmp_path / "c", "--corruptions", "fog", *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err


def test_missing_dataset_is_one_line(tmp_path, capsys):
    rc = run_cli("--dataset", tmp_path / "nope.npz", "--out", tmp_path / "c", "--corruptions", "fog")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope.npz" in err[0]


def test_objectnet_protocol_on_an_image_folder(tmp_path):
    """The paper preset's ObjectNet path: 1-px border cropped, short side resized, centre crop to 224."""
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "objectnet"
    for cls in ("banana", "chair"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            a = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
            a[0, :] = a[-1, :] = a[:, 0] = a[:, -1] = 255  # the frame that must go
            Image.fromarray(a).save(root / cls / f"{i}.png")
    out = tmp_path / "onc"
    assert run_cli("--dataset", root, "--out", out, "--corruptions", "jpeg_compression", "--severities", "2",
                   "--table", "imagenet") == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["image_shape"] == [224, 224, 3] and m["classes"] == ["banana", "chair"] and m["n_images"] == 4
    with np.load(out / m["cells"][0]["files"][0]["file"]) as a:
        assert a["x"].shape == (4, 224, 224, 3) and a["y"].tolist() == [0, 0, 1, 1]


def test_out_of_space_is_one_line_and_leaves_nothing_half_written(tiny_npz, tmp_path, capsys, monkeypatch):
    import errno

    import robustify.commands.corrupt as cmd

    path, _, _ = tiny_npz
    out = tmp_path / "c"
    real = np.savez
    calls = {"n": 0}

    def savez_fails_on_second_chunk(f, **arrays):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"partial bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, **arrays)

    monkeypatch.setattr(cmd.np, "savez", savez_fails_on_second_chunk)
    rc = run_cli("--dataset", path, "--out", out, "--corruptions", "fog", "--severities", "1", "--chunk-size", 4)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "No space left on device" in err[0] and "rerun resumes" in err[0]
    assert sorted(p.name for p in (out / "fog" / "1").iterdir()) == ["00000.npz"]  # no temp file, no partial chunk
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(cmd.np, "savez", real)
    assert run_cli("--dataset", path, "--out", out, "--corruptions", "fog", "--severities", "1", "--chunk-size", 4) == 0
    assert (out / "manifest.json").exists()
