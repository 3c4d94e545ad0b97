"""Batched torch building blocks shared by the corruptions (padding, filters, zoom, sampling, RNG).

Images inside the engine are float32 NCHW tensors; every helper works on any device. CPU tensors take
fast paths where `use_compiled` says so: numba kernels (`_cpu_kernels`) and OpenCV, with the same
semantics (tests run both).
"""

from __future__ import annotations

import functools
import threading
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

_MASK64 = (1 << 64) - 1
COMPILED_CPU = True  # tests switch it off to run the torch code (what other devices run) on the CPU


def use_compiled(x: torch.Tensor) -> bool:
    """Whether work on `x` goes to the CPU fast paths (numba kernels, OpenCV), else to the torch code."""
    return COMPILED_CPU and x.device.type == "cpu"


# ---------------------------------------------------------------------------------------------
# per-image random streams


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=None)
def _stream_key(stream: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(stream.encode(), digest_size=8).digest(), "little")


class ImageRng:
    """Random draws per image, keyed only by the image's seed, so output never depends on batching.

    Three kinds: torch generators per (image seed, named draw) for the per-pixel noise we cannot take
    from the reference (gaussian, shot, glass offsets; the CPU kernels replay gaussian's: `torch_seeds`),
    keys of the same pairs for the compiled CPU kernels' counter-based generator (shot, glass offsets on
    CPU), and numpy's own streams seeded exactly as the reference engine seeds them (`legacy`,
    `legacy_seeds`, `generators_map`, `pcg64_states`): then our output equals the reference's for the
    same seed.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device):
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.seeds)

    def _gen(self, seed: int, stream: str) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(_splitmix64(seed ^ _stream_key(stream)) & ((1 << 63) - 1))
        return g

    def torch_seeds(self, stream: str) -> np.ndarray:
        """(B,) uint32: the part of each `_gen` seed that torch's CPU generator (MT19937) uses, its low
        32 bits, for the compiled copy of torch's CPU randn (`_cpu_kernels.torch_randn`)."""
        return np.array([_splitmix64(s ^ _stream_key(stream)) & 0xFFFFFFFF for s in self.seeds], dtype=np.uint32)

    def keys(self, stream: str) -> np.ndarray:
        """(B,) uint64 keys per (image seed, named draw) for the compiled CPU kernels' counter-based
        generator (`_cpu_kernels.draw`)."""
        return np.array([_splitmix64(s ^ _stream_key(stream)) for s in self.seeds], dtype=np.uint64)

    def map(self, fn) -> list:
        """[fn(i, seed) for each image i] in threads (`thread_map`): numpy and torch fill arrays without
        holding the GIL, so large per-image draws run side by side."""
        return thread_map(fn, range(len(self.seeds)), self.seeds)

    def _draw(self, stream: str, fn, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """(B, *shape): fn(generator, out) fills out[i] per image (in threads, no stacking copy)."""
        out = torch.empty((len(self), *shape), dtype=dtype, device=self.device)
        mode = torch.is_inference_mode_enabled()  # thread-local: the engine's inference mode, in each thread

        def fill(i, seed):
            with torch.inference_mode(mode):
                fn(self._gen(seed, stream), out[i])

        self.map(fill)
        return out

    def rand(self, stream: str, *shape: int) -> torch.Tensor:
        """(B, *shape) uniform [0, 1) float32."""
        return self._draw(stream, lambda g, o: torch.rand(shape, generator=g, out=o), shape, torch.float32)

    def randn(self, stream: str, *shape: int) -> torch.Tensor:
        return self._draw(stream, lambda g, o: torch.randn(shape, generator=g, out=o), shape, torch.float32)

    def randint(self, stream: str, low: int, high: int, *shape: int) -> torch.Tensor:
        """(B, *shape) int64 in [low, high)."""
        return self._draw(stream, lambda g, o: torch.randint(low, high, shape, generator=g, out=o), shape, torch.int64)

    def legacy(self):
        """numpy's legacy generator per image (this thread's object, re-seeded: iterate, draw, move on),
        seeded as the reference engine seeds numpy (seed mod 2^32): the reference's own few draws of
        motion blur (angle) and frost (picture, crop). Large draws: `legacy_seeds`.
        """
        for s in self.seeds:
            yield _legacy_state(s)

    def legacy_seeds(self) -> np.ndarray:
        """(B,) uint32: the seeds of `legacy`, for the compiled copy of that generator (`_cpu_kernels`:
        legacy_random, legacy_uniform32, legacy_normal32), which draws the reference's large fields of
        snow, fog and elastic (the same numbers, 3-7× faster than numpy)."""
        return np.array([s % (1 << 32) for s in self.seeds], dtype=np.uint32)

    def generators_map(self, fn) -> list:
        """[fn(i, g) per image i], g = np.random.default_rng(seed mod 2^32): the stream skimage's
        random_noise draws from when the reference engine passes it the image seed. In threads (`map`)."""
        return self.map(lambda i, s: fn(i, np.random.default_rng(s % (1 << 32))))

    def pcg64_states(self, n: int) -> np.ndarray:
        """(B, 6) uint64: the PCG64 state of `generators_map`'s generator per image, the state after n
        draws, and its increment, each as (high, low) 64 bits, for the compiled copy of that stream."""
        out = np.empty((len(self), 6), np.uint64)
        for i, s in enumerate(self.seeds):
            bg = np.random.PCG64(s % (1 << 32))
            start = bg.state["state"]
            bg.advance(n)
            words = (start["state"], bg.state["state"]["state"], start["inc"])
            out[i] = [v for w in words for v in (w >> 64, w & _MASK64)]
        return out


_THREAD = threading.local()


def _legacy_state(seed: int) -> np.random.RandomState:
    """This thread's legacy generator, re-seeded (seed mod 2^32): re-seeding takes ~1 µs, a new
    RandomState ~100 µs, which is the whole cost of a 32-px image."""
    rs = getattr(_THREAD, "legacy", None)
    if rs is None:
        rs = _THREAD.legacy = np.random.RandomState(0)
    rs.seed(seed % (1 << 32))
    return rs


def thread_map(fn, *items: Sequence) -> list:
    """list(map(fn, *items)) spread over torch's thread count, for work that releases the GIL (numpy
    and torch array fills, PIL codecs). Results in order; they never depend on the thread count."""
    k = max(1, min(len(items[0]), torch.get_num_threads()))
    if k == 1:
        return list(map(fn, *items))
    return list(_thread_pool(k).map(fn, *items))


@functools.lru_cache(maxsize=None)
def _thread_pool(k: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(k, thread_name_prefix="robustify-corrupt")


# ---------------------------------------------------------------------------------------------
# padding by index (any pad size, any image size)


def pad_index(n: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source indices of a padded axis. mode: edge | reflect101 (cv2 default) | symmetric (scipy 'reflect')."""
    return _wrap(torch.arange(-before, n + after, device=device), n, mode)


_NATIVE = {"edge": "replicate", "reflect101": "reflect"}


def pad2d(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    if mode in _NATIVE and x.ndim == 4 and (mode == "edge" or max(top, bottom) < h and max(left, right) < w):
        return F.pad(x, (left, right, top, bottom), mode=_NATIVE[mode])
    x = x.index_select(-2, pad_index(h, top, bottom, mode, x.device))
    return x.index_select(-1, pad_index(w, left, right, mode, x.device))


# ---------------------------------------------------------------------------------------------
# filters


def gaussian_kernel1d(sigma: float, truncate: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter1d's kernel (radius = int(truncate * sigma + 0.5))."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x ** 2)
    return phi / phi.sum()


_CV2_BORDER = {"edge": "BORDER_REPLICATE", "symmetric": "BORDER_REFLECT", "reflect101": "BORDER_REFLECT_101"}


def gaussian_filter(x: torch.Tensor, sigma, mode: str, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over the last two axes of (N, C, H, W); sigma: float or (sy, sx).

    CPU float32: OpenCV's separable filter with the same taps (several times faster than the shifted
    sums below), per plane, or per image (all channels in one call) when x is channels-last in memory.
    """
    sy, sx = (sigma, sigma) if np.isscalar(sigma) else sigma
    h, w = x.shape[-2:]
    if use_compiled(x) and x.dtype == torch.float32:
        import cv2

        kx, ky = ((gaussian_kernel1d(s, truncate) if s > 0 else np.ones(1)).astype(np.float32) for s in (sx, sy))
        channels_last = x.ndim == 4 and x.shape[1] <= 4 and not x.is_contiguous() and x.permute(0, 2, 3, 1).is_contiguous()
        src = x.permute(0, 2, 3, 1).numpy() if channels_last else np.ascontiguousarray(x.numpy()).reshape(-1, h, w)
        out = np.empty_like(src)
        border = getattr(cv2, _CV2_BORDER[mode])
        for a, o in zip(src, out):
            cv2.sepFilter2D(a, -1, kx, ky, dst=o, borderType=border)
        return torch.from_numpy(out).permute(0, 3, 1, 2) if channels_last else torch.from_numpy(out).reshape(x.shape)
    if sy > 0:
        x = _shift_sum(pad2d(x, *(2 * [len(gaussian_kernel1d(sy, truncate)) // 2]), 0, 0, mode), gaussian_kernel1d(sy, truncate), -2, h)
    if sx > 0:
        x = _shift_sum(pad2d(x, 0, 0, *(2 * [len(gaussian_kernel1d(sx, truncate)) // 2]), mode), gaussian_kernel1d(sx, truncate), -1, w)
    return x


def _shift_sum(xp: torch.Tensor, k: np.ndarray, dim: int, n: int) -> torch.Tensor:
    """1-D correlation along `dim` of an already padded tensor as a sum of shifted slices (fast for short kernels)."""
    if len(k) == 1:
        return xp
    out = xp.narrow(dim, 0, n) * float(k[0])
    for j in range(1, len(k)):
        out.add_(xp.narrow(dim, j, n), alpha=float(k[j]))
    return out


def _fft_size(n: int) -> int:
    """Next 2^a 3^b 5^c ≥ n (fast FFT lengths)."""
    best = n
    while True:
        m = best
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return best
        best += 1


def correlate(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """out[h, w] = Σ k[a, b] · xpad[h + a, w + b], 'same' size, kernel centred (odd sides).

    x: (N, C, H, W); kernel: (kh, kw) shared, or (N, kh, kw) one per image. Large kernels use the FFT.
    """
    n, c, h, w = x.shape
    kh, kw = kernel.shape[-2:]
    ry, rx = kh // 2, kw // 2
    xp = pad2d(x, ry, ry, rx, rx, mode)
    if kernel.ndim == 2 and kh * kw <= 81:
        wgt = kernel.to(x.dtype).view(1, 1, kh, kw)
        return F.conv2d(xp.reshape(n * c, 1, *xp.shape[-2:]), wgt).reshape(n, c, h, w)
    hp, wp = _fft_size(xp.shape[-2]), _fft_size(xp.shape[-1])
    X = torch.fft.rfft2(xp, s=(hp, wp))
    k = kernel.to(x.dtype)
    K = torch.fft.rfft2(k, s=(hp, wp))
    K = K.unsqueeze(1) if kernel.ndim == 3 else K
    out = torch.fft.irfft2(X * K.conj(), s=(hp, wp))
    return out[..., :h, :w]


# ---------------------------------------------------------------------------------------------
# geometry


def zoom_shape(n: int, z: float) -> tuple[int, int, int]:
    """The reference clipped_zoom along one axis: (crop start, crop length, zoomed length)."""
    ch = int(np.ceil(n / float(z)))
    top = (n - ch) // 2
    return top, ch, int(round(ch * z))


def clipped_zoom(x: torch.Tensor, z: float) -> torch.Tensor:
    """Centre crop of 1/z of each side, zoomed back with scipy.ndimage.zoom(order=1) geometry.

    Returns the full zoomed crop (≥ the input size); callers choose how to cut it back.
    """
    h, w = x.shape[-2:]
    t0, c0, o0 = zoom_shape(h, z)
    t1, c1, o1 = zoom_shape(w, z)
    crop = x[..., t0:t0 + c0, t1:t1 + c1]
    # scipy zoom(grid_mode=False) maps output o to input o*(in-1)/(out-1): align_corners=True
    return F.interpolate(crop, size=(o0, o1), mode="bilinear", align_corners=True)


def numba_threads(n: int) -> None:
    """Give the compiled CPU loops as many threads as torch has (they run one after the other)."""
    import numba

    from . import _cpu_kernels  # noqa: F401  (selects numba's threading layer first)

    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def cpu_kernel(name: str):
    """The compiled CPU kernel `name` from _cpu_kernels, with numba's thread count set to torch's."""
    from . import _cpu_kernels

    numba_threads(torch.get_num_threads())
    return getattr(_cpu_kernels, name)


def unit32(x: torch.Tensor) -> np.ndarray:
    """A uint8 CPU tensor as float32 x / 255 (the reference's float32(x / 255)), numpy, same shape."""
    rows = as_rows(x)
    return cpu_kernel("unit32")(rows, np.empty(rows.shape, np.float32)).reshape(tuple(x.shape))


def as_rows(x: torch.Tensor) -> np.ndarray:
    """A CPU tensor as a C-contiguous numpy array of one row per image, (B, N) (no copy if contiguous)."""
    return np.ascontiguousarray(x.numpy()).reshape(len(x), -1)


def motion_shifts(angles_deg: np.ndarray, radius: int, sigma: float, shape: tuple[int, int]):
    """The reference `_motion_blur` as shifts: (dy, dx) int64 (B, width) and weights float64 (B, width).

    Copy i is the image shifted by (dy_i, dx_i) with edge replication, weighted by a Gaussian in i;
    the reference stops at the first shift that leaves the image (weight 0 from there on).
    """
    width = radius * 2 + 1
    k = np.exp(-(np.arange(width) ** 2) / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    k = k / k.sum()
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    p0, p1 = width * np.sin(a), width * np.cos(a)
    hyp = np.hypot(p0, p1)
    i = np.arange(width)[None, :]
    dy = -np.ceil((i * p0[:, None]) / hyp[:, None] - 0.5).astype(np.int64)
    dx = -np.ceil((i * p1[:, None]) / hyp[:, None] - 0.5).astype(np.int64)
    inside = (np.abs(dy) < shape[0]) & (np.abs(dx) < shape[1])
    valid = np.cumprod(inside, axis=1).astype(bool)
    return dy, dx, k[None, :] * valid


def motion_blur(x: torch.Tensor, angles_deg: np.ndarray, radius: int, sigma: float, compiled: bool = True) -> torch.Tensor:
    """The reference `_motion_blur` on (B, C, H, W) (any real dtype), one angle per image -> float32.

    CPU: a compiled loop of shifted copies (numba, `motion_blur_nhwc`); other devices (or
    compiled=False): gathered shifted copies for small images, an FFT with per-image kernels for large ones.
    """
    b, c, h, w = x.shape
    if compiled and use_compiled(x):
        return motion_blur_nhwc(x.permute(0, 2, 3, 1), angles_deg, radius, sigma).permute(0, 3, 1, 2)
    x = x.float()
    dy, dx, wt = motion_shifts(angles_deg, radius, sigma, (h, w))
    p = int(max(np.abs(dy).max(), np.abs(dx).max(), 1))
    if h * w > 96 * 96:
        width = 2 * p + 1
        kern = np.zeros((b, width, width), dtype=np.float64)
        bi = np.repeat(np.arange(b), dy.shape[1])
        np.add.at(kern, (bi, (p - dy).ravel(), (p - dx).ravel()), wt.ravel())
        return correlate(x, torch.as_tensor(kern, dtype=torch.float32, device=x.device), "edge")
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    hp, wp = xp.shape[-2:]
    flat = xp.reshape(b, c, hp * wp)
    base = ((torch.arange(h, device=x.device)[:, None] + p) * wp + torch.arange(w, device=x.device)[None, :] + p).reshape(1, 1, -1)
    off = torch.as_tensor(-dy * wp - dx, device=x.device)
    wts = torch.as_tensor(wt, dtype=x.dtype, device=x.device)
    out = torch.zeros(b, c, h * w, dtype=x.dtype, device=x.device)
    for j in range(dy.shape[1]):
        if not wt[:, j].any():
            break
        idx = (base + off[:, j, None, None]).expand(b, c, h * w)
        out.add_(flat.gather(2, idx) * wts[:, j, None, None])
    return out.reshape(b, c, h, w)


def motion_blur_nhwc(x: torch.Tensor, angles_deg: np.ndarray, radius: int, sigma: float) -> torch.Tensor:
    """motion_blur of a CPU (B, H, W, C) tensor (uint8 or float32) -> float32 (B, H, W, C), compiled."""
    b, h, w, c = x.shape
    dy, dx, wt = motion_shifts(angles_deg, radius, sigma, (h, w))
    out = np.empty((b, h, w, c), np.float32)
    return torch.from_numpy(cpu_kernel("motion_sum")(np.ascontiguousarray(x.numpy()), dy, dx, wt.astype(np.float32), out))


def zoom_tables(n: int, z: float, crop: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """clipped_zoom along one axis, cut back to n by `crop` (see blur.crop_zoomed), as bilinear taps:
    for each output index the source indices lo, hi and the weight of hi (scipy zoom(order=1)
    geometry: align_corners)."""
    t, c, o = zoom_shape(n, z)
    offset = (o - n) // 2 if crop == "center" else 0
    src = t + (np.arange(n) + offset) * ((c - 1) / (o - 1) if o > 1 else 0.0)
    lo = np.clip(np.floor(src).astype(np.int64), t, t + c - 1)
    hi = np.minimum(lo + 1, t + c - 1)
    return lo, hi, (src - lo).astype(np.float32)


def bilinear_sample(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, mode: str) -> torch.Tensor:
    """x (B, C, H, W) at float pixel coordinates ys, xs (B, H', W'), order 1.

    mode "symmetric" is scipy's map_coordinates(mode='reflect'), "reflect101" cv2's BORDER_REFLECT_101,
    "edge" replication; all three are grid_sample's reflection/border padding with the matching
    corner convention.
    """
    h, w = x.shape[-2:]
    if mode == "symmetric":
        gx, gy = (xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1
        align, pad = False, "reflection"
    elif mode == "reflect101":
        gx, gy = xs / max(w - 1, 1) * 2 - 1, ys / max(h - 1, 1) * 2 - 1
        align, pad = True, "reflection"
    else:
        gx, gy = xs / max(w - 1, 1) * 2 - 1, ys / max(h - 1, 1) * 2 - 1
        align, pad = True, "border"
    grid = torch.stack([gx, gy], dim=-1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=pad, align_corners=align)


def _wrap(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    if mode == "edge" or n == 1:
        return i.clamp(0, n - 1)
    if mode == "symmetric":
        m = i.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if mode == "reflect101":
        m = i.remainder(2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    raise ValueError(mode)


def next_power_of_2(x: int) -> int:
    return 1 if x == 0 else 2 ** (x - 1).bit_length()


def plasma_draws(rng: ImageRng, mapsize: int) -> np.ndarray:
    """(B, mapsize² - 1) float64: the reference plasma_fractal's uniforms for each image, in its order."""
    return cpu_kernel("legacy_random")(rng.legacy_seeds(), np.empty((len(rng), mapsize * mapsize - 1)))


def plasma_fractal(rng: ImageRng, mapsize: int, wibbledecay: float) -> torch.Tensor:
    """The reference diamond-square heightmap, one per image: (B, mapsize, mapsize) in [0, 1].

    Its M² - 1 uniforms are the reference's own (numpy's legacy stream for the image seed, consumed
    in the same order), so the map equals the reference's up to float32 rounding.
    """
    b = len(rng)
    dev = rng.device
    m = torch.zeros(b, mapsize, mapsize, device=dev)
    u = torch.as_tensor(plasma_draws(rng, mapsize), dtype=torch.float32, device=dev)
    used = 0
    stepsize = mapsize
    wibble = 100.0

    def wibbled(a):
        nonlocal used
        n = a[0].numel()
        r = u[:, used:used + n].reshape(a.shape)
        used += n
        return a / 4 + wibble * (r * (2 * wibble) - wibble)

    while stepsize >= 2:
        half = stepsize // 2
        corner = m[:, 0::stepsize, 0::stepsize]
        sq = corner + torch.roll(corner, -1, 1)
        sq = sq + torch.roll(sq, -1, 2)
        m[:, half::stepsize, half::stepsize] = wibbled(sq)
        dr = m[:, half::stepsize, half::stepsize]
        ul = m[:, 0::stepsize, 0::stepsize]
        lt = dr + torch.roll(dr, 1, 1) + ul + torch.roll(ul, -1, 2)
        m[:, 0::stepsize, half::stepsize] = wibbled(lt)
        tt = dr + torch.roll(dr, 1, 2) + ul + torch.roll(ul, -1, 1)
        m[:, half::stepsize, 0::stepsize] = wibbled(tt)
        stepsize //= 2
        wibble /= wibbledecay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)
