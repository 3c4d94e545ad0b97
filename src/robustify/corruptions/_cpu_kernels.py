"""Compiled CPU loops (numba, a dependency of the reference package) for CPU tensors; the torch code in
ops.py / the corruption modules serves every other device, with the same semantics (tests compare).

Every kernel runs `prange` over the images of a batch and does all of one image's work in one
iteration, so its output never depends on the batch or on the number of threads. Arithmetic follows
the reference's precision where its truncation to uint8 depends on it (float64 or float32 steps), so
most outputs equal the reference's bit for bit. Per-pixel noise that the reference does not fix
(shot noise, glass offsets) comes from a counter-based generator (`draw`: the n-th splitmix64 output
for a per-image key): no sequential stream, a few integer operations per draw.

Speed notes (measured here): inner loops index slice views with the loop counter itself
(src = row[s:s + n]; src[k]); indexing row[s + k] keeps numba's negative-index handling in the loop
and stops vectorisation (9× slower). A channel count known at compile time unrolls the channel loop
(3× faster), hence the `nc == 3` branches. Where a `prange` body compiled poorly (fog, glass: up to
1.7× slower than the same loop outside it), it calls a separate per-image function instead.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

# numba's own worker threads: its OpenMP layer would share libgomp with torch and reset torch's
# intra-op thread count (seen: 1 -> 2 after the first parallel call)
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV24 = np.float32(1.0 / (1 << 24))


@numba.njit(inline="always")
def draw(key, n):  # pragma: no cover - compiled
    """The n-th (n ≥ 0) output of splitmix64 seeded with `key` (uint64): 64 random bits."""
    z = key + (np.uint64(n) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def uniform(key, n):  # pragma: no cover - compiled
    """float32 in [0, 1) with 24 random bits (exact in float32) from draw(key, n)."""
    return np.float32(np.int64(draw(key, n) >> np.uint64(40))) * _INV24  # via int64: one instruction


@numba.njit(inline="always")
def _u8(v):  # pragma: no cover - compiled
    """np.uint8(clip(v, 0, 255)): clip, then truncate (float64)."""
    return np.uint8(min(max(v, 0.0), 255.0))


@numba.njit(inline="always")
def _u8_unit(y):  # pragma: no cover - compiled
    """np.uint8(clip(y, 0, 1) * 255) in float64."""
    return np.uint8(min(max(y, 0.0), 1.0) * 255.0)


@numba.njit(inline="always")
def _u8_unit32(y):  # pragma: no cover - compiled
    """np.uint8(clip(y, 0, 1) * 255) in float32 (the reference's float32 steps)."""
    return np.uint8(min(max(y, np.float32(0)), np.float32(1)) * np.float32(255))


@numba.njit(cache=True, parallel=True)
def unit32(x, out):  # pragma: no cover - compiled
    """out = float32(x) / 255 row by row, (B, N) uint8 -> float32: the reference's float32(x / 255)
    (the same 256 values), in one pass (torch's .float().div_() takes two)."""
    for b in numba.prange(x.shape[0]):
        src, dst = x[b], out[b]
        for k in range(src.shape[0]):
            dst[k] = np.float32(src[k]) / np.float32(255)
    return out


@numba.njit(cache=True, parallel=True)
def to_u8(y, top, out):  # pragma: no cover - compiled
    """out = np.uint8(clip(y, 0, top) · (255 / top)) row by row, (B, N) float32 -> uint8, top 1 or 255:
    the reference's last step in one pass."""
    top32 = np.float32(top)
    gain = np.float32(255 / top)
    for b in numba.prange(y.shape[0]):
        src, dst = y[b], out[b]
        for k in range(src.shape[0]):
            dst[k] = np.uint8(min(max(src[k], np.float32(0)), top32) * gain)
    return out


# ---------------------------------------------------------------------------------------------
# MT19937 (numpy's legacy generator as RandomState.seed(s) seeds it, and torch's CPU generator),
# compiled: the same numbers, 7× faster than numpy's (the twist and the tempering vectorise)

_MT_N, _MT_M = 624, 397


@numba.njit(inline="always")
def _mt_seed(seed, key):  # pragma: no cover - compiled
    """RandomState.seed(seed) for 0 ≤ seed < 2^32 (init_genrand)."""
    s = np.uint32(seed)
    for i in range(_MT_N):
        key[i] = s
        s = np.uint32(np.uint32(1812433253) * (s ^ (s >> np.uint32(30))) + np.uint32(i + 1))


@numba.njit(inline="always")
def _mt_mix(a, b, c):  # pragma: no cover - compiled
    y = (a & np.uint32(0x80000000)) | (b & np.uint32(0x7FFFFFFF))
    return c ^ (y >> np.uint32(1)) ^ ((np.uint32(0) - (y & np.uint32(1))) & np.uint32(0x9908B0DF))


@numba.njit(inline="always")
def _mt_twist(key):  # pragma: no cover - compiled
    """The next 624 untempered words, in place (loops that vectorise: a word read back was written ≥ 227
    iterations before)."""
    for i in range(_MT_N - _MT_M):
        key[i] = _mt_mix(key[i], key[i + 1], key[i + _MT_M])
    for i in range(_MT_N - _MT_M, _MT_N - 1):
        key[i] = _mt_mix(key[i], key[i + 1], key[i + _MT_M - _MT_N])
    key[_MT_N - 1] = _mt_mix(key[_MT_N - 1], key[0], key[_MT_M - 1])


@numba.njit(inline="always")
def _mt_temper(y):  # pragma: no cover - compiled
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    return y ^ (y >> np.uint32(18))


@numba.njit(inline="always")
def _mt_doubles(key, pos, out):  # pragma: no cover - compiled
    """Fill out with random_sample() doubles (53 bits from two words) from word `pos` (even; 624 right
    after seeding) of key; returns the new position."""
    i = 0
    while i < out.shape[0]:
        if pos == _MT_N:
            _mt_twist(key)
            pos = 0
        m = min((_MT_N - pos) // 2, out.shape[0] - i)
        words, dst = key[pos:pos + 2 * m], out[i:i + m]
        for k in range(m):
            a, b = _mt_temper(words[2 * k]) >> np.uint32(5), _mt_temper(words[2 * k + 1]) >> np.uint32(6)
            dst[k] = (a * 67108864.0 + b) / 9007199254740992.0
        pos += 2 * m
        i += m
    return pos


@numba.njit(inline="always")
def _mt_floats24(key, pos, out):  # pragma: no cover - compiled
    """Fill out with torch's uniform_real_distribution<float>(0, 1) values, (word & (2^24 - 1)) · 2^-24,
    from word `pos` of key; returns the new position."""
    i = 0
    while i < out.shape[0]:
        if pos == _MT_N:
            _mt_twist(key)
            pos = 0
        m = min(_MT_N - pos, out.shape[0] - i)
        words, dst = key[pos:pos + m], out[i:i + m]
        for k in range(m):
            dst[k] = np.float32(_mt_temper(words[k]) & np.uint32(0xFFFFFF)) * np.float32(1.0 / (1 << 24))
        pos += m
        i += m
    return pos


@numba.njit(cache=True, parallel=True)
def legacy_random(seeds, out):  # pragma: no cover - compiled
    """out[b] = RandomState(seeds[b]).random_sample(n), (B, n) float64."""
    for b in numba.prange(out.shape[0]):
        key = np.empty(_MT_N, np.uint32)
        _mt_seed(seeds[b], key)
        _mt_doubles(key, _MT_N, out[b])
    return out


@numba.njit(cache=True, parallel=True)
def legacy_uniform32(seeds, skip, scale, shift, out):  # pragma: no cover - compiled
    """out[b] = float32(u · scale - shift) for RandomState(seeds[b])'s doubles u after the first `skip`
    (the reference's random_sample(n) · 2a - a, float64 before the cast), (B, n) float32."""
    block = _MT_N // 2
    for b in numba.prange(out.shape[0]):
        key, u = np.empty(_MT_N, np.uint32), np.empty(block)
        _mt_seed(seeds[b], key)
        pos = _mt_doubles(key, _MT_N, np.empty(skip))
        dst = out[b]
        for i in range(0, dst.shape[0], block):
            m = min(block, dst.shape[0] - i)
            pos = _mt_doubles(key, pos, u[:m])
            d = dst[i:i + m]
            for k in range(m):
                d[k] = np.float32(u[k] * scale - shift)
    return out


@numba.njit(cache=True, parallel=True)
def legacy_normal32(seeds, loc, scale, out, angles):  # pragma: no cover - compiled
    """out[b] = float32(RandomState(seeds[b]).normal(loc, scale, n)), then angles[b] = its next
    uniform(-135, -45) (the reference snow's draws). numpy's polar method: pairs of doubles in (-1, 1)
    until inside the unit circle, two normals per pair (the second first). A block at a time, in
    stages that vectorise or do not branch: the accepted pairs first, then their normals."""
    block = _MT_N // 2  # even: a pair never straddles two blocks
    for b in numba.prange(out.shape[0]):
        key, u = np.empty(_MT_N, np.uint32), np.empty(block)
        x1, x2, r2 = np.empty(block // 2), np.empty(block // 2), np.empty(block // 2)
        at = np.empty(block // 2, np.int64)
        _mt_seed(seeds[b], key)
        pos, dst, k = _MT_N, out[b], 0
        nxt = block  # index in u of the first double not consumed by the normals
        while k < dst.shape[0]:
            pos = _mt_doubles(key, pos, u)
            m = 0
            for j in range(block // 2):
                a, c = 2.0 * u[2 * j] - 1.0, 2.0 * u[2 * j + 1] - 1.0
                r = a * a + c * c
                x1[m], x2[m], r2[m], at[m] = a, c, r, 2 * j + 2
                m += (r < 1.0) & (r != 0.0)
            m = min(m, (dst.shape[0] - k + 1) // 2)
            for j in range(m):
                f = np.sqrt(-2.0 * np.log(r2[j]) / r2[j])
                dst[k] = np.float32(loc + scale * (f * x2[j]))
                if k + 1 < dst.shape[0]:
                    dst[k + 1] = np.float32(loc + scale * (f * x1[j]))
                k += 2
            nxt = at[m - 1] if m else block
        if nxt == block:
            pos, nxt = _mt_doubles(key, pos, u), 0
        angles[b] = -135.0 + 90.0 * u[nxt]
    return out


# ---------------------------------------------------------------------------------------------
# torch's CPU randn (float32), compiled: MT19937 uniforms, then Box-Muller on blocks of 16 with the
# cephes polynomials of ATen's avx_mathfun.h (log256_ps, sincos256_ps) and the fused multiply-adds its
# build contracts them to (found by matching torch.randn; a test checks it). 3× faster than torch.


@intrinsic
def _fma(typingctx, a, b, c):
    """a · b + c rounded once (float32)."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    f32 = numba.types.float32
    return f32(f32, f32, f32), codegen


@intrinsic
def _bits(typingctx, a):
    """The bits of a float32 as an int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return numba.types.int32(numba.types.float32), codegen


@intrinsic
def _from_bits(typingctx, a):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return numba.types.float32(numba.types.int32), codegen


_F = np.float32


@numba.njit(inline="always")
def _logf(x):  # pragma: no cover - compiled
    """log256_ps for x > 0."""
    bits = _bits(max(x, _F(1.17549435e-38)))
    e = _F((bits >> np.int32(23)) - np.int32(0x7F)) + _F(1)
    x = _from_bits((bits & np.int32(~0x7F800000)) | np.int32(0x3F000000))  # mantissa in [0.5, 1)
    small = x < _F(0.707106781186547524)
    tmp = x if small else _F(0)
    x = x - _F(1)
    e = e - (_F(1) if small else _F(0))
    x = x + tmp
    z = x * x
    y = _F(7.0376836292E-2)
    for p in (-1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1, -1.6668057665E-1,
              2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1):
        y = _fma(y, x, _F(p))
    y = _fma(y * x, z, e * _F(-2.12194440e-4))
    y = _fma(z, _F(-0.5), y)
    return _fma(e, _F(0.693359375), x + y)


@numba.njit(inline="always")
def _sincosf(x):  # pragma: no cover - compiled
    """sincos256_ps for 0 ≤ x < 2π: (sin x, cos x)."""
    j = (np.int32(x * _F(1.27323954473516)) + np.int32(1)) & np.int32(~1)
    y = _F(j)
    x = _fma(y, _F(-0.78515625), x)
    x = _fma(y, _F(-2.4187564849853515625e-4), x)
    x = _fma(y, _F(-3.77489497744594108e-8), x)
    z = x * x
    yc = _fma(_F(2.443315711809948E-005), z, _F(-1.388731625493765E-003))
    yc = _fma(yc, z, _F(4.166664568298827E-002))
    yc = _fma(yc * z, z, -(z * _F(0.5))) + _F(1)
    ys = _fma(_F(-1.9515295891E-4), z, _F(8.3321608736E-3))
    ys = _fma(ys, z, _F(-1.6666654611E-1))
    ys = _fma(ys * z, x, x)
    s, c = (ys, yc) if (j & np.int32(2)) == 0 else (yc, ys)
    return (-s if j & np.int32(4) else s), (-c if (~(j - np.int32(2))) & np.int32(4) else c)


@numba.njit(inline="always")
def _box_muller16(d):  # pragma: no cover - compiled
    """ATen's NormalFill16 (mean 0, std 1) on 16 uniforms, in place."""
    for j in range(8):
        r = np.sqrt(_F(-2) * _logf(_F(1) - d[j]))
        s, c = _sincosf(_F(6.283185307179586) * d[j + 8])
        d[j] = r * c
        d[j + 8] = r * s


@numba.njit(inline="always")
def _torch_randn(seed, out):  # pragma: no cover - compiled
    """out = torch.randn(n, generator=torch.Generator().manual_seed(seed)) for 0 ≤ seed < 2^32, n ≥ 16."""
    key = np.empty(_MT_N, np.uint32)
    _mt_seed(seed, key)
    n = out.shape[0]
    pos = _mt_floats24(key, _MT_N, out)
    for i in range(0, n - 15, 16):
        _box_muller16(out[i:i + 16])
    if n % 16:  # as torch: the last 16 again, from fresh uniforms
        _mt_floats24(key, pos, out[n - 16:])
        _box_muller16(out[n - 16:])
    return out


@numba.njit(cache=True, parallel=True)
def torch_randn(seeds, out):  # pragma: no cover - compiled
    """out[b] = torch's CPU randn for the generator seeded with seeds[b] (uint32), (B, n ≥ 16) float32."""
    for b in numba.prange(out.shape[0]):
        _torch_randn(seeds[b], out[b])
    return out


# ---------------------------------------------------------------------------------------------
# numpy's PCG64 (np.random.default_rng), compiled: a 128-bit LCG step, then 64 bits out (XSL-RR)

_PCG_MUL_HI, _PCG_MUL_LO = np.uint64(0x2360ED051FC65DA4), np.uint64(0x4385DF649FCCF645)


@intrinsic
def _mulhi(typingctx, a, b):
    """The high 64 bits of the 128-bit product of two uint64 (one machine multiply)."""
    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        return builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))
    return numba.types.uint64(numba.types.uint64, numba.types.uint64), codegen


@numba.njit(inline="always")
def _pcg_next(hi, lo, inc_hi, inc_lo):  # pragma: no cover - compiled
    """One PCG64 step of the state (hi, lo): (new hi, new lo, the 64 output bits)."""
    nlo = lo * _PCG_MUL_LO
    lo2 = nlo + inc_lo
    hi2 = _mulhi(lo, _PCG_MUL_LO) + lo * _PCG_MUL_HI + hi * _PCG_MUL_LO + inc_hi + np.uint64(lo2 < nlo)
    rot, v = hi2 >> np.uint64(58), hi2 ^ lo2
    return hi2, lo2, (v >> rot) | (v << ((np.uint64(64) - rot) & np.uint64(63)))


# ---------------------------------------------------------------------------------------------
# blur


@numba.njit(inline="always")
def _shifted(xp, i, dy, dx, p, nc, n):  # pragma: no cover - compiled
    """Row i of the padded image xp shifted by (dy, dx), edge rows replicated: W·C contiguous values."""
    s = (p - dx) * nc
    return xp[min(max(i - dy, 0), xp.shape[0] - 1)][s:s + n]


@numba.njit(cache=True, parallel=True)
def motion_sum(x, dy, dx, wt, out):  # pragma: no cover - compiled
    """out[b, i, k] = Σ_j wt[b, j] · x[b, clip(i - dy[b, j]), clip(k - dx[b, j])] on (B, H, W, C) arrays
    (edge replication; weights float32; stops at the first zero weight).

    Each image is padded left/right once (a contiguous copy per row, then the margins), so a shifted
    output row is one contiguous run of W·C values. The row accumulates four shifted copies per pass,
    added pair by pair, (acc + (w0·a + w1·b)) + (w2·c + w3·d): the sums of two copies per pass, with
    half the passes (2× faster with the padding, which went value by value through clamped indices).
    """
    nb, h, w, nc = x.shape
    n = w * nc
    for b in numba.prange(nb):
        taps, p = 0, 0
        while taps < dy.shape[1] and wt[b, taps] != 0:
            p = max(p, abs(dx[b, taps]))
            taps += 1
        xp = np.empty((h, (w + 2 * p) * nc), np.float32)
        for i in range(h):
            src, dst = x[b, i].ravel(), xp[i]
            inner = dst[p * nc:p * nc + n]
            for k in range(n):
                inner[k] = src[k]
            for k in range(p):
                for ch in range(nc):
                    dst[k * nc + ch] = src[ch]
                    dst[(p + w + k) * nc + ch] = src[n - nc + ch]
        dyb, dxb, wb = dy[b], dx[b], wt[b]
        for i in range(h):
            acc = out[b, i].ravel()
            acc[:] = 0
            j = 0
            while j + 4 <= taps:
                s0, s1 = _shifted(xp, i, dyb[j], dxb[j], p, nc, n), _shifted(xp, i, dyb[j + 1], dxb[j + 1], p, nc, n)
                s2, s3 = _shifted(xp, i, dyb[j + 2], dxb[j + 2], p, nc, n), _shifted(xp, i, dyb[j + 3], dxb[j + 3], p, nc, n)
                w0, w1, w2, w3 = wb[j], wb[j + 1], wb[j + 2], wb[j + 3]
                for k in range(n):
                    acc[k] = (acc[k] + (w0 * s0[k] + w1 * s1[k])) + (w2 * s2[k] + w3 * s3[k])
                j += 4
            if j + 2 <= taps:
                s0, s1 = _shifted(xp, i, dyb[j], dxb[j], p, nc, n), _shifted(xp, i, dyb[j + 1], dxb[j + 1], p, nc, n)
                w0, w1 = wb[j], wb[j + 1]
                for k in range(n):
                    acc[k] += w0 * s0[k] + w1 * s1[k]
                j += 2
            if j < taps:
                s0, w0 = _shifted(xp, i, dyb[j], dxb[j], p, nc, n), wb[j]
                for k in range(n):
                    acc[k] += w0 * s0[k]
    return out


@numba.njit(inline="always")
def _zoom_row(src, starts, da, db, wa, wb, dst):  # pragma: no cover - compiled
    """dst = the row src (W·C float32) resampled along W: run r (outputs starts[r]..starts[r + 1] - 1)
    blends src at the fixed offsets da[r], db[r] with weights wa, wb: contiguous loops that vectorise
    (the taps one value at a time were 1.3× slower)."""
    for r in range(da.shape[0]):
        s, e = starts[r], starts[r + 1]
        a, b = src[s + da[r]:e + da[r]], src[s + db[r]:e + db[r]]
        ta, tb, d = wa[s:e], wb[s:e], dst[s:e]
        for k in range(e - s):
            d[k] = a[k] * ta[k] + b[k] * tb[k]


@numba.njit(cache=True, parallel=True)
def zoom_blur(x, r0, r1, wy, starts, da, db, runs, wa, wb, out):  # pragma: no cover - compiled
    """The reference zoom blur on uint8 (B, H, W, C): (x + Σ_z zoom_z(x)) / (Z + 1), clipped, ·255,
    truncated to uint8 into `out`.

    x as float32 is x / 255 (the reference's float32(x / 255)). Zoom z is separable bilinear: output
    row i blends source rows r0[z, i], r1[z, i] (weight wy[z, i] on r1), each resampled along W by
    the first runs[z] column runs of zoom z (`_zoom_row`). Output rows go in order, so the source
    rows only move forward: each zoom keeps its last two resampled rows (slot = row parity) and the
    working set stays in cache.
    """
    nb, h, w, nc = x.shape
    n = w * nc
    nz = r0.shape[0]
    scale = np.float32(nz + 1)
    for b in numba.prange(nb):
        xb = x[b].reshape(h, n)
        xf = np.empty((h, n), np.float32)  # float32 once: converting per tap is 3× slower
        for i in range(h):
            src, dst = xb[i], xf[i]
            for k in range(n):
                dst[k] = np.float32(src[k]) / np.float32(255)
        rows = np.empty((nz, 2, n), np.float32)
        held = np.full((nz, 2), -1, np.int64)
        acc = np.empty(n, np.float32)
        for i in range(h):
            acc[:] = 0
            for z in range(nz):
                m = runs[z]
                for r in (r0[z, i], r1[z, i]):
                    if held[z, r & 1] != r:
                        _zoom_row(xf[r], starts[z, :m + 1], da[z, :m], db[z, :m], wa[z], wb[z], rows[z, r & 1])
                        held[z, r & 1] = r
                t = wy[z, i]
                u = np.float32(1) - t
                ra, rb = rows[z, r0[z, i] & 1], rows[z, r1[z, i] & 1]
                for k in range(n):
                    acc[k] += ra[k] * u + rb[k] * t
            src, dst = xf[i], out[b, i].ravel()
            for k in range(n):
                dst[k] = _u8_unit32((src[k] + acc[k]) / scale)
    return out


@numba.njit(inline="always")
def _reflect101(j, n):  # pragma: no cover - compiled
    """Index j folded into 0..n-1 by whole-sample symmetry (cv2 BORDER_REFLECT_101)."""
    if 0 <= j < n:
        return j
    if n == 1:
        return 0
    m = j % (2 * n - 2)
    return m if m < n else 2 * n - 2 - m


@numba.njit(cache=True, parallel=True)
def disk_blur(x, half, scale, g, out):  # pragma: no cover - compiled
    """Correlation of x / 255 (uint8 (B, H, W, C)) with (disk ⊛ g ⊗ g), reflect-101 borders (cv2's
    filter2D default), clipped, ·255, truncated to uint8 into `out`.

    The disk (value `scale`, symmetric) is a sum of vertical runs, one per column offset t - r of
    half-height half[t] (-1: none): with running column sums of the integer pixel values each run
    is two reads whatever its length, exact in int32. The disk is evaluated on the image grown by
    the small Gaussian's radius q, which then runs separably (taps g, float64 as the reference) to
    H×W. Rows stream through ring buffers (2r + 2 running-sum rows, 2q + 1 disk rows) kept in cache.
    """
    nb, h, w, nc = x.shape
    r = (half.shape[0] - 1) // 2
    q = (g.shape[0] - 1) // 2
    pad = r + q
    wp = (w + 2 * pad) * nc
    n = (w + 2 * q) * nc
    rows = np.array([_reflect101(p - pad, h) for p in range(h + 2 * pad)])
    cols = np.array([_reflect101(m - pad, w) for m in range(w + 2 * pad)])
    ring = 2 * r + 2
    unit_scale = scale / 255.0  # the sums are of pixel values, not of values / 255
    for b in numba.prange(nb):
        xp = np.empty((h + 2 * pad, wp), np.int32)  # the padded image
        for p in range(h + 2 * pad):
            src, dst = x[b, rows[p]], xp[p]
            inner, flat = dst[pad * nc:(pad + w) * nc], src.ravel()
            for k in range(w * nc):
                inner[k] = flat[k]
            for m in range(pad):  # the reflected margins
                for ch in range(nc):
                    dst[m * nc + ch] = src[cols[m], ch]
                    dst[(pad + w + m) * nc + ch] = src[cols[pad + w + m], ch]
        csum = np.zeros((ring, wp), np.int32)  # csum[p % ring] = Σ of padded rows < p
        for p in range(2 * r + 1):
            prev, cur, add = csum[p % ring], csum[(p + 1) % ring], xp[p]
            for k in range(wp):
                cur[k] = prev[k] + add[k]
        grown = np.empty((2 * q + 1, n), np.int32)  # grown[j % (2q + 1)]: disk sums of grown row j
        col, res = np.empty(n), np.empty(w * nc)
        for j in range(h + 2 * q):  # grown row j is centred on padded row j + r: needs csum j..j + 2r + 1
            if j > 0:
                p = j + 2 * r
                prev, cur, add = csum[p % ring], csum[(p + 1) % ring], xp[p]
                for k in range(wp):
                    cur[k] = prev[k] + add[k]
            acc = grown[j % (2 * q + 1)]
            acc[:] = 0
            for t in range(half.shape[0]):
                a = half[t]
                if a < 0:
                    continue
                hi = csum[(j + r + a + 1) % ring][t * nc:t * nc + n]
                lo = csum[(j + r - a) % ring][t * nc:t * nc + n]
                for k in range(n):
                    acc[k] += hi[k] - lo[k]
            i = j - 2 * q  # the Gaussian for output row i: rows, then columns
            if i < 0:
                continue
            col[:] = 0
            for t in range(g.shape[0]):
                src = grown[(i + t) % (2 * q + 1)]
                for k in range(n):
                    col[k] += g[t] * src[k]
            res[:] = 0
            for t in range(g.shape[0]):
                src = col[t * nc:t * nc + w * nc]
                for k in range(w * nc):
                    res[k] += g[t] * src[k]
            dst = out[b, i].ravel()
            for k in range(w * nc):
                dst[k] = _u8_unit(res[k] * unit_scale)
    return out


@numba.njit(inline="always")
def _pack_n(x, p, nc, scale):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        src, dst = x[i].ravel(), p[i]
        for k in range(dst.shape[0]):
            v = np.uint32(0)
            for ch in range(nc):
                v |= np.uint32(src[k * nc + ch] * scale) << np.uint32(8 * ch)
            dst[k] = v


@numba.njit(inline="always")
def _unpack_n(p, x, nc, scale):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        src, dst = p[i], x[i].ravel()
        for k in range(src.shape[0]):
            for ch in range(nc):
                dst[k * nc + ch] = np.float32((src[k] >> np.uint32(8 * ch)) & np.uint32(255)) / scale


@numba.njit(inline="always")
def _pack(x, scale):  # pragma: no cover - compiled
    """(H, W, C ≤ 4) values v with ⌊v · scale⌋ in 0..255 -> (H, W) uint32 of those bytes, one pixel per
    word (one copy per move)."""
    p = np.empty(x.shape[:2], np.uint32)
    if x.shape[2] == 3:  # constant channel count: unrolled
        _pack_n(x, p, 3, scale)
    else:
        _pack_n(x, p, x.shape[2], scale)
    return p


@numba.njit(inline="always")
def _unpack(p, x, scale):  # pragma: no cover - compiled
    """x = the bytes of p / scale."""
    if x.shape[2] == 3:
        _unpack_n(p, x, 3, scale)
    else:
        _unpack_n(p, x, x.shape[2], scale)


@numba.njit(inline="always")
def _shuffle_round(p, dx, dy, delta):  # pragma: no cover - compiled
    """One round of the reference loop on one image (H, W): visit inner pixels from the bottom-right
    backwards, copy p[h + dy, w + dx] into p[h, w] ((dx, dy)[i, j]: the offsets of the (i, j)-th visit)."""
    h, w = p.shape
    for i in range(h - 2 * delta):
        hh = h - delta - i
        for j in range(w - 2 * delta):
            ww = w - delta - j
            p[hh, ww] = p[hh + dy[i, j], ww + dx[i, j]]


@numba.njit(cache=True, parallel=True)
def copy_shuffle(x, offsets, delta):  # pragma: no cover - compiled
    """The reference glass-blur loop on (B, H, W, C ≤ 4) integer values 0..255, in place, with given
    (dx, dy) offsets (B, nh, nw, 2)."""
    for b in numba.prange(x.shape[0]):
        p = _pack(x[b], np.float32(1))
        _shuffle_round(p, offsets[b, :, :, 0], offsets[b, :, :, 1], delta)
        _unpack(p, x[b], np.float32(1))
    return x


@numba.njit(cache=True)
def _glass_shuffle_one(x, key, iterations, delta):  # pragma: no cover - compiled
    h, w, nc = x.shape
    nh, nw = h - 2 * delta, w - 2 * delta
    span = np.uint64(2 * delta)
    p = _pack(x, np.float32(255))
    # two arrays, not one (nh, nw, 2): the drawing loop then vectorises (5× faster)
    dx, dy = np.empty((nh, nw), np.int8), np.empty((nh, nw), np.int8)
    for t in range(iterations):
        for i in range(nh):
            rx, ry = dx[i], dy[i]
            for j in range(nw):
                z = draw(key, (t * nh + i) * nw + j)
                rx[j] = np.int8(((z & np.uint64(0xFFFFFFFF)) * span) >> np.uint64(32)) - delta
                ry[j] = np.int8(((z >> np.uint64(32)) * span) >> np.uint64(32)) - delta
        _shuffle_round(p, dx, dy, delta)
    _unpack(p, x, np.float32(255))


@numba.njit(cache=True, parallel=True)
def glass_shuffle(x, keys, iterations, delta):  # pragma: no cover - compiled
    """The reference's middle step on float32 (B, H, W, C) values in [0, 1], in place: truncated to
    uint8(x · 255), `iterations` rounds of copy_shuffle, back to x / 255. Offsets in [-delta, delta)
    drawn per image from keys[b]: the (dx, dy) of round t, visit v are the low / high halves of
    draw(key, t·nh·nw + v)."""
    for b in numba.prange(x.shape[0]):
        _glass_shuffle_one(x[b], keys[b], iterations, delta)
    return x


# ---------------------------------------------------------------------------------------------
# noise and pointwise corruptions: uint8 (B, N) in, uint8 (B, N) out (the reference's truncation)


@numba.njit(cache=True, parallel=True)
def shot_noise(x, keys, cdf, start, levels, out):  # pragma: no cover - compiled
    """Inverse-CDF Poisson per value: k = min{k : cdf[v, k] ≥ u}, u = uniform(keys[b], i), searched
    from start[v, ⌊u·bins⌋]; out = levels[k]. The uniforms come a block at a time from a loop that
    vectorises (15% faster than drawing them inside the search loop)."""
    bins = start.shape[1]
    block = 1024
    for b in numba.prange(x.shape[0]):
        src, dst, key = x[b], out[b], keys[b]
        us = np.empty(block, np.float32)
        for i0 in range(0, src.shape[0], block):
            m = min(block, src.shape[0] - i0)
            for i in range(m):
                us[i] = uniform(key, i0 + i)
            for i in range(m):
                u, v = us[i], src[i0 + i]
                k = np.int64(start[v, np.int64(u * bins)])
                while cdf[v, k] < u:
                    k += 1
                dst[i0 + i] = levels[k]
    return out


@numba.njit(cache=True, parallel=True)
def gaussian_noise(x, seeds, c, out):  # pragma: no cover - compiled
    """out = uint8(clip(x / 255 + c · noise, 0, 1) · 255), noise = torch's CPU randn for seeds[b]."""
    cf = np.float32(c)
    for b in numba.prange(x.shape[0]):
        src, dst = x[b], out[b]
        n = _torch_randn(seeds[b], np.empty(src.shape[0], np.float32))
        for i in range(src.shape[0]):
            dst[i] = _u8_unit32(np.float32(src[i]) / np.float32(255) + cf * n[i])
    return out


@numba.njit(cache=True, parallel=True)
def impulse_noise(x, states, flip_max, out):  # pragma: no cover - compiled
    """skimage's salt & pepper from its two uniform draws per value (u = (64 bits >> 11) · 2^-53, from
    the PCG64 streams of states[b] = (flip state, salt state, increment), each as (hi, lo)): flipped
    where u ≤ c, i.e. bits >> 11 ≤ flip_max = ⌊c · 2^53⌋, to 255 where also the salt u ≤ 0.5, else
    to 0. Without branches: they are random, and mispredicted cost 1.6× the time."""
    half = np.uint64(1 << 52)
    for b in numba.prange(x.shape[0]):
        fh, fl, sh, sl, ih, il = states[b, 0], states[b, 1], states[b, 2], states[b, 3], states[b, 4], states[b, 5]
        src, dst = x[b], out[b]
        for i in range(src.shape[0]):
            fh, fl, f = _pcg_next(fh, fl, ih, il)
            sh, sl, s = _pcg_next(sh, sl, ih, il)
            keep = np.uint8((f >> np.uint64(11)) <= flip_max) - np.uint8(1)  # 0 where flipped, else 255
            salt = np.uint8(0) - np.uint8((s >> np.uint64(11)) <= half)
            dst[i] = (src[i] & keep) | (salt & ~keep)
    return out


@numba.njit(cache=True, parallel=True)
def brightness(x, c, out):  # pragma: no cover - compiled
    """HSV value + c (float64, as skimage): with hue and saturation fixed, RGB scaled by V' / V.
    x, out: (B, H·W·3). Divisions, not a table of v / 255: the loop then vectorises (2.3× faster)."""
    for b in numba.prange(x.shape[0]):
        src, dst = x[b].ravel(), out[b].ravel()
        for p in range(src.shape[0] // 3):
            r, g, bl = src[3 * p], src[3 * p + 1], src[3 * p + 2]
            v = max(r, g, bl) / 255.0
            v2 = min(v + c, 1.0)
            ratio = v2 / v if v > 0 else 0.0
            dst[3 * p] = _u8_unit(r / 255.0 * ratio if v > 0 else v2)
            dst[3 * p + 1] = _u8_unit(g / 255.0 * ratio if v > 0 else v2)
            dst[3 * p + 2] = _u8_unit(bl / 255.0 * ratio if v > 0 else v2)
    return out


@numba.njit(cache=True, parallel=True)
def contrast(x, c, out):  # pragma: no cover - compiled
    """(x / 255 - mean) · c + mean per channel (float64, as the reference), clipped, ·255. x, out: (B, H·W·3).
    Only 256 values per channel: the mean from a histogram, the output from a table (flat, channels
    unrolled: 1.5× faster than 2-D indexing)."""
    unit = np.arange(256) / 255.0
    for b in numba.prange(x.shape[0]):
        src, dst = x[b].ravel(), out[b].ravel()
        npx = src.shape[0] // 3
        hist = np.zeros((3, 256), np.int64)
        h0, h1, h2 = hist[0], hist[1], hist[2]
        for p in range(npx):
            h0[src[3 * p]] += 1
            h1[src[3 * p + 1]] += 1
            h2[src[3 * p + 2]] += 1
        table = np.empty(3 * 256, np.uint8)  # table[3 · v + channel]
        for ch in range(3):
            mean = (hist[ch] * unit).sum() / npx
            for v in range(256):
                table[3 * v + ch] = _u8_unit((unit[v] - mean) * c + mean)
        for p in range(npx):
            dst[3 * p] = table[3 * src[3 * p]]
            dst[3 * p + 1] = table[3 * src[3 * p + 1] + 1]
            dst[3 * p + 2] = table[3 * src[3 * p + 2] + 2]
    return out


@numba.njit(cache=True, parallel=True)
def frost(x, tex, picks, c0, c1, out):  # pragma: no cover - compiled
    """clip(c0 · x + c1 · crop, 0, 255) with crop = tex[i, r:r + H, s:s + W] for picks[b] = (i, r, s)."""
    nb, h, w, nc = x.shape
    for b in numba.prange(nb):
        t, r, s = picks[b, 0], picks[b, 1], picks[b, 2]
        for i in range(h):
            src, crop, dst = x[b, i].ravel(), tex[t, r + i, s:s + w].ravel(), out[b, i].ravel()
            for k in range(w * nc):
                dst[k] = _u8(c0 * src[k] + c1 * crop[k])
    return out


# ---------------------------------------------------------------------------------------------
# weather


@numba.njit(inline="always")
def _plasma(u, m, decay):  # pragma: no cover - compiled
    """The reference plasma_fractal into m (M, M float32) from its M² - 1 uniforms u, consumed in its
    order; the same float32 / float64 steps (float32 map, float64 wibble), then scaled to [0, 1]."""
    size = m.shape[0]
    m[:, :] = 0
    used = 0
    step = size
    wibble = 100.0
    while step >= 2:
        half = step // 2
        g = size // step
        wrap = g - 1  # g is a power of two: i & wrap is i mod g, also for i = -1
        for a in range(g):  # squares: mean of the 4 corners (wrapping) + wibble
            for b in range(g):
                a1, b1 = ((a + 1) & wrap) * step, ((b + 1) & wrap) * step
                sq = (m[a * step, b * step] + m[a1, b * step]) + (m[a * step, b1] + m[a1, b1])
                m[half + a * step, half + b * step] = sq / np.float32(4) + wibble * (2 * wibble * u[used] - wibble)
                used += 1
        for a in range(g):  # diamonds, first those at (a·step, b·step + half) ...
            for b in range(g):
                dr = m[half + a * step, half + b * step] + m[half + ((a - 1) & wrap) * step, half + b * step]
                ul = m[a * step, b * step] + m[a * step, ((b + 1) & wrap) * step]
                m[a * step, half + b * step] = (dr + ul) / np.float32(4) + wibble * (2 * wibble * u[used] - wibble)
                used += 1
        for a in range(g):  # ... then those at (a·step + half, b·step)
            for b in range(g):
                dr = m[half + a * step, half + b * step] + m[half + a * step, half + ((b - 1) & wrap) * step]
                ul = m[a * step, b * step] + m[((a + 1) & wrap) * step, b * step]
                m[half + a * step, b * step] = (dr + ul) / np.float32(4) + wibble * (2 * wibble * u[used] - wibble)
                used += 1
        step //= 2
        wibble /= decay
    m -= m.min()
    m /= m.max()


@numba.njit(cache=True)
def _fog_one(x, seed, size, weight, decay, out):  # pragma: no cover - compiled
    h, w, nc = x.shape
    key, u = np.empty(_MT_N, np.uint32), np.empty(size * size - 1)
    _mt_seed(seed, key)
    _mt_doubles(key, _MT_N, u)
    m = np.empty((size, size), np.float32)
    _plasma(u, m, decay)
    top = x.max() / 255.0
    scale = top / (top + weight)  # one product instead of the reference's · top / (top + weight)
    fog = np.empty(w, np.float32)
    for i in range(h):
        row = m[i]
        for k in range(w):  # weight · plasma as float32 (the reference's float32 map times a scalar)
            fog[k] = np.float32(weight * row[k])
        src, dst = x[i].ravel(), out[i].ravel()
        for k in range(w):  # three channels, unrolled: the loop vectorises (2.5× faster than over W·C)
            f = np.float64(fog[k])
            for ch in range(3):
                dst[3 * k + ch] = _u8_unit((src[3 * k + ch] / 255.0 + f) * scale)


@numba.njit(cache=True, parallel=True)
def fog(x, seeds, size, weight, decay, out):  # pragma: no cover - compiled
    """The reference fog on uint8 (B, H, W, 3): x / 255 + weight · plasma (top-left H×W of the size²
    map from the first size² - 1 doubles of RandomState(seeds[b])), scaled by max / (max + weight),
    clipped, ·255."""
    for b in numba.prange(x.shape[0]):
        _fog_one(x[b], seeds[b], size, weight, decay, out[b])
    return out


@numba.njit(cache=True, parallel=True)
def snow_blend(x, layer, blend, out):  # pragma: no cover - compiled
    """The reference snow's last step on uint8 (B, H, W, 3): x / 255 (float32) whitened towards its
    grey level, plus the snow layer (rounded to 1/255, its top-left H×W) and the layer turned by 180°;
    float32 as the reference up to the layer (float64), clipped, ·255, truncated.

    Vectorises (2.3× faster than with a table for x / 255, the same float32 values): the flakes of a
    row first, then the pixels, with no table lookups."""
    nb, h, w, nc = x.shape
    cb, cb1, s = np.float32(blend), np.float32(1) - np.float32(blend), np.float32(255)
    for b in numba.prange(nb):
        lay, flakes = layer[b], np.empty(w)
        for i in range(h):
            src, dst, top, bot = x[b, i].ravel(), out[b, i].ravel(), lay[i], lay[h - 1 - i]
            for k in range(w):
                flakes[k] = np.rint(top[k] * 255.0) / 255.0 + np.rint(bot[w - 1 - k] * 255.0) / 255.0
            for k in range(w):
                r, g, bl = np.float32(src[3 * k]) / s, np.float32(src[3 * k + 1]) / s, np.float32(src[3 * k + 2]) / s
                lift = (np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * bl) * np.float32(1.5) + np.float32(0.5)
                dst[3 * k] = _u8_unit(np.float64(cb * r + cb1 * max(r, lift)) + flakes[k])
                dst[3 * k + 1] = _u8_unit(np.float64(cb * g + cb1 * max(g, lift)) + flakes[k])
                dst[3 * k + 2] = _u8_unit(np.float64(cb * bl + cb1 * max(bl, lift)) + flakes[k])
    return out


# ---------------------------------------------------------------------------------------------
# digital


@numba.njit(inline="always")
def _symmetric(j, n):  # pragma: no cover - compiled
    """Index j folded into 0..n-1 by half-sample symmetry (scipy 'reflect', cv2 BORDER_REFLECT)."""
    if 0 <= j < n:
        return j
    m = j % (2 * n)
    return m if m < n else 2 * n - 1 - m


@numba.njit(inline="always")
def _displace_n(src, dy, dx, alpha, dst, nc):  # pragma: no cover - compiled
    h, w = dy.shape
    iy, ix = np.empty(w, np.int64), np.empty(w, np.int64)
    ty, tx = np.empty(w), np.empty(w)
    for i in range(h):
        ddy, ddx, out = dy[i], dx[i], dst[i].ravel()
        for k in range(w):  # the coordinates of a row first: a loop that vectorises (1.7× faster overall)
            yy, xx = i + np.float64(ddy[k] * alpha), k + np.float64(ddx[k] * alpha)
            y0, x0 = np.floor(yy), np.floor(xx)
            ty[k], tx[k] = yy - y0, xx - x0
            iy[k], ix[k] = np.int64(y0), np.int64(x0)
        for k in range(w):
            ya, yb = _symmetric(iy[k], h), _symmetric(iy[k] + 1, h)
            xa, xb = _symmetric(ix[k], w) * nc, _symmetric(ix[k] + 1, w) * nc
            w00, w01, w10, w11 = (1 - ty[k]) * (1 - tx[k]), (1 - ty[k]) * tx[k], ty[k] * (1 - tx[k]), ty[k] * tx[k]
            for ch in range(nc):
                v = w00 * src[ya, xa + ch] + w01 * src[ya, xb + ch] + w10 * src[yb, xa + ch] + w11 * src[yb, xb + ch]
                out[k * nc + ch] = _u8_unit32(np.float32(v))


@numba.njit(cache=True, parallel=True)
def displace(img, d, alpha, out):  # pragma: no cover - compiled
    """scipy map_coordinates(img, (i + dy, k + dx, ch), order=1, mode='reflect') per image (float64
    weights as scipy), the float32 result clipped, ·255, truncated to uint8. img: float32 (B, H, W, C);
    d: float32 (B, 2, H, W), the fields (dx, dy) before their gain alpha (applied in float32)."""
    nb, h, w, nc = img.shape
    a = np.float32(alpha)
    for b in numba.prange(nb):
        src = img[b].reshape(h, w * nc)
        if nc == 3:  # constant channel count: unrolled
            _displace_n(src, d[b, 1], d[b, 0], a, out[b], 3)
        else:
            _displace_n(src, d[b, 1], d[b, 0], a, out[b], nc)
    return out
