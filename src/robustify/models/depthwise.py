"""Depthwise convolutions whose weight gradient is computed by a compiled loop on CPU.

oneDNN's weight gradient of a 5×5 depthwise convolution on channels_last CPU tensors is far slower
than its 3×3 one (measured here, one thread, 256 × 1152 channels: 39 ms at 3×3 spatial, 83 ms at
7×7, vs 0.9 / 9.5 ms for a 3×3 kernel). A plain loop over (image, pixel, tap) with the channels
innermost takes 1.5 / 16 ms. The 5×5 depthwise convolution of EfficientNet-Lite's last stage is the
largest single cost of the student's distillation step (18% for Lite0 @ 96 px), and such layers
recur in end-to-end fine-tuning.

`DepthwiseConv2d` is a drop-in `nn.Conv2d` (same parameters and state-dict keys, same forward op);
only its backward differs: input gradient from oneDNN, weight gradient from the loop — the same sum
in another order, so equal up to float rounding (tests). Used only where it wins (k ≥ 5) and only
for float32 channels_last CPU tensors; anything else takes `nn.Conv2d`'s own path.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MIN_KERNEL = 5  # at 3×3 oneDNN is as fast as the loop


@numba.njit(cache=True)
def _weight_grad_nhwc(x, g, kh, kw, sh, sw, ph, pw):  # pragma: no cover - compiled
    """dW[i, j, c] = Σ_n,h,w g[n, h, w, c] · x[n, h·sh + i − ph, w·sw + j − pw, c] (zero outside x)."""
    n_img, hin, win, nc = x.shape
    hout, wout = g.shape[1], g.shape[2]
    acc = np.zeros((kh, kw, nc), np.float32)  # k·k·C floats: stays in L2 for the whole batch
    for n in range(n_img):
        for h in range(hout):
            for w in range(wout):
                gv = g[n, h, w]
                for i in range(kh):
                    hh = h * sh + i - ph
                    if hh < 0 or hh >= hin:
                        continue
                    for j in range(kw):
                        ww = w * sw + j - pw
                        if ww < 0 or ww >= win:
                            continue
                        xv, a = x[n, hh, ww], acc[i, j]
                        for c in range(nc):
                            a[c] += gv[c] * xv[c]
    return acc


class _DepthwiseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        g = g.contiguous(memory_format=torch.channels_last)
        gx = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(g, x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1],
                                                     False, [0, 0], weight.shape[0], [True, False, False])[0]
        gw = None
        if ctx.needs_input_grad[1]:
            kh, kw = weight.shape[2:]
            acc = _weight_grad_nhwc(x.detach().permute(0, 2, 3, 1).numpy(), g.detach().permute(0, 2, 3, 1).numpy(),
                                    kh, kw, *ctx.stride, *ctx.padding)
            gw = torch.from_numpy(acc).permute(2, 0, 1).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        return gx, gw, None, None


class DepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d (groups = channels, no bias, dilation 1, zero padding) with the compiled weight gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.weight.requires_grad and torch.is_grad_enabled() and not torch.jit.is_tracing()
                and x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and x.is_contiguous(memory_format=torch.channels_last)):
            return _DepthwiseFn.apply(x, self.weight, self.stride, self.padding)
        return super().forward(x)


def _eligible(m: nn.Module) -> bool:
    # exact type: subclasses (timm's Conv2dSame) pad in their own forward
    return (type(m) is nn.Conv2d and m.groups == m.in_channels == m.out_channels and m.bias is None
            and m.dilation == (1, 1) and m.padding_mode == "zeros" and isinstance(m.padding, tuple)
            and min(m.kernel_size) >= MIN_KERNEL)


def use_compiled_depthwise(model: nn.Module) -> int:
    """Swap every eligible depthwise conv of `model` in place (parameters kept); returns how many."""
    swapped = [m for m in model.modules() if _eligible(m)]
    for m in swapped:
        m.__class__ = DepthwiseConv2d  # same attributes and parameters; only forward differs
    return len(swapped)
