"""Fast unit tests of the corruption engine: shapes, determinism, batching, severity, registry, errors."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from robustify.corruptions import CIFAR, CORRUPTIONS, IMAGENET, corrupt, image_seeds, register_corruption
from robustify.errors import ConfigError, DataError


def images(n=8, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 1, 1, 3))
    ramp = np.linspace(0, 1, h * w).reshape(1, h, w, 1)
    noise = rng.normal(0, 20, size=(n, h, w, 3))
    return np.clip(base * ramp + 40 * np.sin(np.arange(w) / 3)[None, None, :, None] + noise, 0, 255).astype(np.uint8)


def seeds_for(name, severity, n, base=0):
    return image_seeds(base, np.arange(n), name, severity)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def test_canonical_names():
    import imagecorruptions

    assert CORRUPTIONS == tuple(imagecorruptions.get_corruption_names("common"))
    assert set(IMAGENET) == set(CORRUPTIONS) == set(CIFAR)


@pytest.mark.parametrize("table", ["imagenet", "cifar"])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_and_sizes(name, table):
    for h, w in ((32, 32), (40, 56), (16, 16)):
        x = images(3, h, w)
        y = corrupt(x, name, 3, seeds_for(name, 3, 3), table=table)
        assert y.shape == x.shape and y.dtype == np.uint8


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_and_batch_independent(name, monkeypatch):
    import robustify.corruptions.engine as engine

    x = images(8)
    s = seeds_for(name, 4, 8)
    full = corrupt(x, name, 4, s, table="imagenet")
    assert np.array_equal(full, corrupt(x, name, 4, s, table="imagenet"))
    halves = np.concatenate([corrupt(x[:4], name, 4, s[:4], table="imagenet"), corrupt(x[4:], name, 4, s[4:], table="imagenet")])
    assert np.array_equal(full, halves)
    monkeypatch.setattr(engine, "MAX_PIXELS_PER_STEP", 3 * 32 * 32)  # micro-batches of 3 inside one call
    assert np.array_equal(full, corrupt(x, name, 4, s, table="imagenet"))


RANDOM = [n for n in CORRUPTIONS if n not in ("defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression")]


@pytest.mark.parametrize("name", RANDOM)
def test_seed_changes_output(name):
    x = images(4)
    a = corrupt(x, name, 5, seeds_for(name, 5, 4, base=0), table="imagenet")
    b = corrupt(x, name, 5, seeds_for(name, 5, 4, base=1), table="imagenet")
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("table", ["imagenet", "cifar"])
def test_distortion_grows_with_severity(table):
    x = images(16, seed=3)
    monotone = []
    for name in CORRUPTIONS:
        p = [psnr(x, corrupt(x, name, s, seeds_for(name, s, 16), table=table)) for s in range(1, 6)]
        if not (table == "cifar" and name == "elastic_transform"):  # CIFAR-10-C's affine jitter shrinks with severity
            assert p[0] > p[4], f"{name}: PSNR {p}"
        monotone.append(all(a > b for a, b in zip(p, p[1:])))
    # a few reference tables are not strictly monotone (e.g. glass_blur s2/s3 sigma, frost weights)
    assert sum(monotone) >= 11, monotone


def test_image_seeds():
    idx = np.arange(100)
    s = image_seeds(0, idx, "fog", 3)
    assert s.dtype == np.int64 and (s >= 0).all() and len(set(s.tolist())) == 100
    assert np.array_equal(s, image_seeds(0, idx, "fog", 3))
    assert np.array_equal(s[40:60], image_seeds(0, idx[40:60], "fog", 3))
    for other in (image_seeds(1, idx, "fog", 3), image_seeds(0, idx, "fog", 4), image_seeds(0, idx, "snow", 3)):
        assert not np.intersect1d(s, other).size


def test_registry_adds_a_corruption(monkeypatch):
    import robustify.corruptions.registry as registry
    import robustify.corruptions.tables as tables

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setitem(tables.TABLE_CONSTANTS["cifar"], "invert_test", (1, 2, 3, 4, 5))

    @register_corruption("invert_test")
    def invert(x, c, rng, opt):
        return 255 - x

    x = images(2)
    assert np.array_equal(corrupt(x, "invert_test", 2, seeds_for("invert_test", 2, 2)), 255 - x)
    with pytest.raises(ValueError):
        register_corruption("invert_test")(invert)
    with pytest.raises(ConfigError, match="no constants in table 'imagenet'"):
        corrupt(x, "invert_test", 2, seeds_for("invert_test", 2, 2), table="imagenet")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(name="gausian_noise"), ConfigError, "did you mean 'gaussian_noise'"),
    (dict(severity=0), ConfigError, "severity must be an integer 1..5"),
    (dict(severity=6), ConfigError, "severity must be an integer 1..5"),
    (dict(severity=True), ConfigError, "severity"),
    (dict(table="imagnet"), ConfigError, "unknown severity table"),
    (dict(engine="fast"), ConfigError, "unknown corruption engine"),
    (dict(engine="reference", table="cifar"), ConfigError, "only has the 'imagenet' table"),
    (dict(x=images(2).astype(np.float32)), DataError, "uint8 N×H×W×3"),
    (dict(x=images(2)[..., 0]), DataError, "uint8 N×H×W×3"),
    (dict(x=np.zeros((2, 32, 32, 4), np.uint8)), DataError, "uint8 N×H×W×3"),
    (dict(x=np.zeros((0, 32, 32, 3), np.uint8)), DataError, "empty batch"),
    (dict(seeds=np.arange(3)), DataError, "one integer per image"),
    (dict(x=images(2, 16, 16), engine="reference", table="imagenet"), DataError, "at least 32×32"),
])
def test_bad_input_one_line(kwargs, error, message):
    args = dict(x=images(2), name="gaussian_noise", severity=3, seeds=np.arange(2), table="cifar", engine="ours")
    args.update(kwargs)
    with pytest.raises(error, match=message) as e:
        corrupt(args["x"], args["name"], args["severity"], args["seeds"], table=args["table"], engine=args["engine"])
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# the imagenet table is exactly what the reference package applies


def _reference_constants() -> dict:
    from imagecorruptions import corruptions as ref

    tree = ast.parse(inspect.getsource(ref))
    out = {}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name not in CORRUPTIONS:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("c", "alpha") \
                    and isinstance(node.value, ast.Subscript) and isinstance(node.value.value, ast.List):
                items = []
                for el in node.value.value.elts:
                    if isinstance(el, ast.Call):  # np.arange(start, stop, step)
                        items.append(tuple(ast.literal_eval(a) for a in el.args))
                    else:
                        items.append(eval(compile(ast.Expression(el), "ref", "eval"), {}))  # literals and products
                out[fn.name] = tuple(items)
    return out


def test_imagenet_table_matches_reference_source():
    ref = _reference_constants()
    assert set(ref) == set(CORRUPTIONS)
    for name in CORRUPTIONS:
        assert tuple(ref[name]) == tuple(IMAGENET[name]), name


# transcribed by hand from hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py
MAKE_CIFAR_C = {
    "gaussian_noise": [0.04, 0.06, .08, .09, .10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [.01, .02, .03, .05, .07],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "zoom_blur": [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "fog": [(.2, 3), (.5, 3), (.75, 2.5), (1, 2), (1.5, 1.75)],
    "brightness": [.05, .1, .15, .2, .3],
    "contrast": [.75, .5, .4, .3, 0.15],
    "elastic_transform": [(32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07), (32 * 0.08, 32 * 0.06, 32 * 0.06),
                          (32 * 0.1, 32 * 0.04, 32 * 0.05), (32 * 0.1, 32 * 0.03, 32 * 0.03)],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "jpeg_compression": [80, 65, 58, 50, 40],
}


def test_cifar_table_matches_make_cifar_c():
    for name in CORRUPTIONS:
        assert tuple(CIFAR[name]) == tuple(MAKE_CIFAR_C[name]), name


# ---------------------------------------------------------------------------------------------
# pieces that can be checked exactly against the reference


EXACT = ["defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
         "motion_blur", "frost", "snow", "fog", "elastic_transform", "impulse_noise"]


@pytest.mark.parametrize("name", EXACT)
def test_matches_reference_for_the_same_seed(name):
    """Corruptions without randomness, or whose random draws we take from the reference's own
    streams for the same image seed (numpy legacy / default_rng), agree with the reference to within
    one grey level (float32 vs float64 rounding before the reference's truncation)."""
    x = images(4, 40, 48, seed=5)
    for s in (1, 4):
        seeds = seeds_for(name, s, 4)
        ours = corrupt(x, name, s, seeds, table="imagenet").astype(int)
        ref = corrupt(x, name, s, seeds, table="imagenet", engine="reference").astype(int)
        diff = np.abs(ours - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.05, (name, s, diff.max(), (diff > 0).mean())


def test_local_shuffle_equals_sequential_loop():
    """The parallel glass-blur shuffle reproduces the reference's sequential copy loop exactly."""
    import torch

    from robustify.corruptions.blur import local_shuffle

    rng = np.random.default_rng(0)
    for h, w, d in ((12, 10, 1), (20, 17, 2), (16, 16, 4)):
        x = rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8)
        nh, nw = h - 2 * d, w - 2 * d
        offs = rng.integers(-d, d, size=(nh, nw, 2))
        seq = x.copy()
        for i, hh in enumerate(range(h - d, d, -1)):
            for j, ww in enumerate(range(w - d, d, -1)):
                dx, dy = offs[i, j]
                seq[hh, ww], seq[hh + dy, ww + dx] = seq[hh + dy, ww + dx], seq[hh, ww]  # the reference's view "swap"
        par = local_shuffle(torch.as_tensor(x).permute(2, 0, 1)[None].float(), torch.as_tensor(offs)[None], d)
        assert np.array_equal(par[0].permute(1, 2, 0).numpy().astype(np.uint8), seq)


def test_shot_noise_is_poisson():
    from scipy import stats

    x = np.full((64, 32, 32, 3), 128, np.uint8)
    c = IMAGENET["shot_noise"][1]  # 25
    y = corrupt(x, "shot_noise", 2, seeds_for("shot_noise", 2, 64), table="imagenet")
    lam = 128 / 255 * c
    levels, counts = np.unique(y, return_counts=True)
    k = np.arange(int(c) + 1)
    expected = stats.poisson.pmf(k, lam)
    expected[-1] += stats.poisson.sf(int(c), lam)
    out = np.uint8(np.clip(k / c, 0, 1) * 255)
    exp_counts = np.array([expected[out == v].sum() for v in levels]) * y.size
    keep = exp_counts > 20
    chi2 = ((counts[keep] - exp_counts[keep]) ** 2 / exp_counts[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


@pytest.mark.parametrize("size", [(32, 32), (100, 120)])
def test_motion_blur_paths_agree(size):
    """The compiled CPU loop, the gathered copies (small, GPU) and the FFT (large, GPU) are one operator."""
    import torch

    from robustify.corruptions.ops import motion_blur

    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.uniform(0, 255, size=(3, 3, *size)), dtype=torch.float32)
    angles = rng.uniform(-45, 45, 3)
    a = motion_blur(x, angles, 15, 5, compiled=True)
    b = motion_blur(x, angles, 15, 5, compiled=False)
    assert torch.allclose(a, b, atol=2e-3)


def test_glass_shuffle_compiled_equals_parallel():
    import torch

    from robustify.corruptions._cpu_kernels import copy_shuffle
    from robustify.corruptions.blur import local_shuffle

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(3, 24, 20, 3)).astype(np.float32)
    offs = rng.integers(-3, 3, size=(3, 24 - 6, 20 - 6, 2))
    a = copy_shuffle(x.copy(), offs, 3)
    b = local_shuffle(torch.as_tensor(x).permute(0, 3, 1, 2), torch.as_tensor(offs), 3).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(a, b)


def test_compiled_generators_replay_numpy_and_torch():
    """The kernels' copies of numpy's legacy generator (snow, fog, elastic), numpy's PCG64 (impulse) and
    torch's CPU randn (gaussian) give those generators' numbers bit for bit."""
    import torch

    from robustify.corruptions import _cpu_kernels as K
    from robustify.corruptions.ops import ImageRng

    seeds = np.array([0, 5, 2**32 - 1, 123456789], np.uint32)
    u = K.legacy_random(seeds, np.empty((4, 1001)))
    normals, angles = np.empty((4, 999), np.float32), np.empty(4)
    K.legacy_normal32(seeds, 0.1, 0.3, normals, angles)
    for i, s in enumerate(seeds):
        assert np.array_equal(u[i], np.random.RandomState(s).random_sample(1001))
        r = np.random.RandomState(s)
        assert np.array_equal(normals[i], r.normal(0.1, 0.3, 999).astype(np.float32)) and angles[i] == r.uniform(-135, -45)
    x = images(3, 20, 24)
    rng = ImageRng([3, 2**40 + 7, 11], "cpu")
    n = x[0].size
    flips = np.stack([np.random.default_rng(s % 2**32).random(2 * n) for s in rng.seeds])
    want = np.where(flips[:, :n] <= 0.09, np.where(flips[:, n:] <= 0.5, 255, 0), x.reshape(3, -1))
    assert np.array_equal(K.impulse_noise(x.reshape(3, -1), rng.pcg64_states(n), np.uint64(0.09 * 2**53), np.empty((3, n), np.uint8)), want)
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("torch's randn without AVX2 takes other log/sin/cos: our gaussian noise is then our own")
    for n in (16, 17, 3000):
        got = K.torch_randn(seeds, np.empty((4, n), np.float32))
        for i, s in enumerate(seeds):
            assert np.array_equal(got[i], torch.randn(n, generator=torch.Generator().manual_seed(int(s))).numpy()), (n, s)


def test_compiled_loops_leave_torch_threads_alone():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        x = images(2)
        for name in ("motion_blur", "glass_blur", "snow"):
            corrupt(x, name, 3, seeds_for(name, 3, 2), table="imagenet")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_thread_count_independent(name):
    """The CPU fast paths spread images over threads (numba, the draws); the output never depends on it."""
    import torch

    x = images(5, 40, 48)
    s = seeds_for(name, 3, 5)
    before = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            outs.append(corrupt(x, name, 3, s, table="imagenet"))
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


# the CPU fast paths draw their own per-pixel noise (counter-based) where the torch code uses torch's
# generators: same distribution, other numbers
OWN_NOISE = ("shot_noise", "glass_blur")


@pytest.mark.parametrize("table", ["imagenet", "cifar"])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_torch_path_agrees_with_cpu_fast_path(name, table, monkeypatch):
    """The torch code (what CUDA runs), run on the CPU, against the CPU fast paths (numba, OpenCV)."""
    import robustify.corruptions.ops as ops

    x = images(8, 40, 48, seed=7)
    for s in (1, 4):
        seeds = seeds_for(name, s, 8)
        fast = corrupt(x, name, s, seeds, table=table).astype(int)
        monkeypatch.setattr(ops, "COMPILED_CPU", False)
        slow = corrupt(x, name, s, seeds, table=table).astype(int)
        monkeypatch.setattr(ops, "COMPILED_CPU", True)
        if name in OWN_NOISE:
            assert abs(psnr(x, fast) - psnr(x, slow)) < 0.3, (name, s, psnr(x, fast), psnr(x, slow))
        else:
            diff = np.abs(fast - slow)
            assert diff.max() <= 1 and (diff > 0).mean() < 0.05, (name, s, diff.max(), (diff > 0).mean())


def test_disk_box_filter_matches_filter2d():
    """The compiled box-sum defocus (disk ⊛ small Gaussian) equals the reference's cv2.filter2D."""
    import cv2

    from robustify.corruptions._cpu_kernels import disk_blur
    from robustify.corruptions.blur import disk_boxes, disk_kernel

    x = images(4, 40, 48, seed=9)
    used = 0
    for c in IMAGENET["defocus_blur"] + CIFAR["defocus_blur"]:
        boxes = disk_boxes(*c)
        if boxes is None:  # a disk touching its canvas edge: cv2.filter2D instead
            continue
        used += 1
        ours = disk_blur(x, *boxes, np.empty_like(x))
        ref = np.stack([np.uint8(np.clip(np.stack([cv2.filter2D(a[..., d] / 255.0, -1, disk_kernel(*c)) for d in range(3)], -1), 0, 1) * 255)
                        for a in x])
        diff = np.abs(ours.astype(int) - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (c, diff.max(), (diff > 0).mean())
    assert used == 8  # all but the two widest ImageNet disks
