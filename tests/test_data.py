"""Data layer: verified mirror files, downloads (local HTTP server), checksums, splits, label maps."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import MIRROR, one_error_line
from robustify.data import datasets as D
from robustify.data import mirror as M
from robustify.errors import ChecksumError, DataError


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """A writable mirror: links to the real files (copy where a test corrupts one)."""
    root = tmp_path / "mirror"
    root.mkdir()
    for f in MIRROR.iterdir():
        (root / f.name).symlink_to(f)
    monkeypatch.setenv(M.ENV_MIRROR, str(root))
    M._verified.clear()
    yield root
    M._verified.clear()


def test_mirror_files_verify():
    for name in ("cifar10.npz", "resnet20-12fca82f.th", "objectnet_to_imagenet_1k.json"):
        assert M.resolve(name).is_file()


def test_checksum_mismatch_names_file_and_fix(fake_mirror):
    target = fake_mirror / "resnet20-12fca82f.th"
    data = bytearray(target.read_bytes())
    target.unlink()
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"resnet20-12fca82f.th: sha256 .* differs .* replace it"):
        M.resolve("resnet20-12fca82f.th")


def test_missing_mirror_file(fake_mirror):
    (fake_mirror / "pacs_64.npz").unlink()
    with pytest.raises(DataError, match="pacs_64.npz is missing from the data mirror"):
        M.resolve("pacs_64.npz")


def test_mirror_not_a_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(M.ENV_MIRROR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="is not a directory"):
        M.resolve("cifar10.npz")


def test_truncated_npz_is_a_clear_error(tmp_path):
    src = MIRROR / "pacs_64.npz"
    bad = tmp_path / "x.npz"
    bad.write_bytes(src.read_bytes()[:4096])
    with pytest.raises(DataError, match="truncated or corrupt"):
        D.user_npz(bad)


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/www on a loopback port."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_and_writes_atomically(http_server, tmp_path):
    www, url = http_server
    payload = np.random.default_rng(0).bytes(300_000)
    (www / "w.bin").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "w.bin"
    M.download(f"{url}/w.bin", dest, sha)
    assert dest.read_bytes() == payload
    dest.unlink()
    with pytest.raises(ChecksumError, match="downloaded file has sha256"):
        M.download(f"{url}/w.bin", dest, "0" * 64)
    assert not dest.exists() and not list(dest.parent.glob("*.tmp")), "no half-written file may remain"
    with pytest.raises(DataError, match="cannot download .* check the network"):
        M.download(f"{url}/missing.bin", dest)


def test_resolve_without_mirror_downloads_into_cache(http_server, tmp_path, monkeypatch):
    www, url = http_server
    shutil.copy(MIRROR / "objectnet_to_imagenet_1k.json", www / "o.json")
    from robustify.data import sources

    monkeypatch.delenv(M.ENV_MIRROR)
    monkeypatch.setenv(M.ENV_CACHE, str(tmp_path / "cache"))
    src = sources.SOURCES["objectnet_to_imagenet_1k.json"]
    monkeypatch.setitem(sources.SOURCES, src.name, sources.Source(src.name, src.sha256, url=f"{url}/o.json"))
    path = M.resolve("objectnet_to_imagenet_1k.json")
    assert path == tmp_path / "cache" / "objectnet_to_imagenet_1k.json" and path.is_file()


def test_cifar_splits_are_disjoint_and_balanced():
    train, val, test = D.cifar10("train"), D.cifar10("val"), D.cifar10("test")
    assert (len(train), len(val), len(test)) == (9000, 1000, 10000)
    assert train.x.shape[1:] == (32, 32, 3) and train.x.dtype == np.uint8 and train.y.dtype == np.int64
    assert np.bincount(val.y).tolist() == [100] * 10
    full = D.cifar10("train_full")
    assert len(full) == 10000
    # val is the last 100 images of each class of the full train split
    assert (full.x[full.y == 3][-100:] == val.x[val.y == 3]).all()


def test_pacs_shift_uses_cifar_label_space():
    sketch = D.pacs("sketch", ["dog", "horse"], D.CIFAR10_CLASSES)
    assert set(np.unique(sketch.y)) == {D.CIFAR10_CLASSES.index("dog"), D.CIFAR10_CLASSES.index("horse")}
    full = D.pacs("sketch")
    assert len(sketch) == int(np.isin(full.y, [0, 4]).sum())
    assert sketch.x.shape[1:] == (64, 64, 3)


def test_pacs_split_is_stratified():
    train, test = D.pacs_split("photo", 0.3, seed=0)
    assert len(train) + len(test) == len(D.pacs("photo"))
    assert set(np.unique(test.y)) == set(range(7))


def test_imagenet_samples():
    ds = D.imagenet_samples()
    assert ds.x.shape == (1000, 96, 96, 3) and (ds.y == np.arange(1000)).all()


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64), "empty"),
    (np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 10]), "label 10 outside 0..9"),
    (np.zeros((2, 8, 8), np.uint8), np.array([0, 1]), "uint8 N×H×W×3"),
    (np.zeros((2, 8, 8, 3), np.float32), np.array([0, 1]), "uint8 N×H×W×3"),
])
def test_bad_arrays(x, y, match):
    with pytest.raises(DataError, match=match):
        D.ArrayDataset("t", x, y)


def test_image_folder_with_border_crop(tmp_path):
    from PIL import Image

    for cls in ("dog", "horse", "unmapped"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(tmp_path / cls / "a.png")
    ds = D.image_folder(tmp_path, 16, border=1)
    assert ds.x.shape == (2, 16, 16, 3)
    assert sorted(ds.y.tolist()) == [D.CIFAR10_CLASSES.index("dog"), D.CIFAR10_CLASSES.index("horse")]


def test_fetch_data_cli_writes_manifest(cli, tmp_path):
    code, out, _ = cli("fetch-data", "--out", tmp_path / "m.json")
    assert code == 0 and "ok  cifar10.npz" in out
    assert (tmp_path / "m.json").is_file()


def test_fetch_data_cli_checksum_failure_is_one_line(cli, fake_mirror, tmp_path):
    target = fake_mirror / "folder_to_objectnet_label.json"
    target.unlink()
    target.write_text("{}")
    code, _, err = cli("fetch-data", "--out", tmp_path / "m.json")
    assert code == 2 and "folder_to_objectnet_label.json: sha256" in one_error_line(err)
    assert not (tmp_path / "m.json").exists()


def test_build_without_network_is_one_error(monkeypatch, tmp_path):
    from robustify.data import build

    def offline(dest):
        import urllib.error

        raise urllib.error.URLError("Name or service not known")

    monkeypatch.delenv(M.ENV_MIRROR)
    monkeypatch.setenv(M.ENV_CACHE, str(tmp_path))
    monkeypatch.setitem(build.BUILDERS, "cifar10", offline)
    with pytest.raises(DataError, match="cannot build cifar10.npz from its canonical download .* set ROBUSTIFY_DATA_MIRROR"):
        M.resolve("cifar10.npz")
