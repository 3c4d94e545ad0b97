"""Training-speed kernels of the models (models/depthwise.py, student.GlobalAvgPool): same values as
the ops they replace — forward bit for bit, gradients up to float rounding — and used only where eligible."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustify.models import create_model
from robustify.models.depthwise import DepthwiseConv2d, use_compiled_depthwise
from robustify.models.student import GlobalAvgPool

NHWC = torch.channels_last


@pytest.mark.parametrize("k,stride,size", [(5, 1, 3), (5, 1, 12), (5, 2, 7), (7, 1, 6), (5, 2, 8)])
def test_depthwise_matches_conv2d(k, stride, size):
    torch.manual_seed(0)
    ref = nn.Conv2d(24, 24, k, stride=stride, padding=k // 2, groups=24, bias=False).to(memory_format=NHWC)
    ours = copy.deepcopy(ref)
    assert use_compiled_depthwise(ours) == 1 and type(ours) is DepthwiseConv2d
    x = torch.randn(6, 24, size, size).contiguous(memory_format=NHWC).requires_grad_(True)
    y_ref, y = ref(x), ours(x)
    assert torch.equal(y, y_ref)  # the same forward op
    g = torch.randn_like(y)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, [x, ref.weight], g)
    gx, gw = torch.autograd.grad(y, [x, ours.weight], g)
    assert torch.equal(gx, gx_ref)  # input gradient: oneDNN's
    assert gw.shape == gw_ref.shape
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-4)  # weight gradient: the loop's sum order
    # a wrong loop (e.g. a tap shifted by one) is far off, not within these tolerances
    assert not torch.allclose(gw.roll(1, dims=-1), gw_ref, rtol=1e-5, atol=1e-4)


def test_only_eligible_convs_are_swapped_and_state_is_unchanged():
    m = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),    # 3×3: oneDNN is as fast
                      nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=True),     # bias
                      nn.Conv2d(8, 16, 5, padding=2, groups=8, bias=False),   # not depthwise
                      nn.Conv2d(8, 8, 5, padding=4, dilation=2, groups=8, bias=False),
                      nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False))    # the only eligible one
    keys = list(m.state_dict())
    assert use_compiled_depthwise(m) == 1
    assert [type(c) is DepthwiseConv2d for c in m] == [False, False, False, False, True]
    assert list(m.state_dict()) == keys


def test_inference_and_non_nhwc_inputs_take_the_plain_path(monkeypatch):
    conv = nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False)
    use_compiled_depthwise(conv)
    calls = []
    monkeypatch.setattr("robustify.models.depthwise._DepthwiseFn.apply", lambda *a: calls.append(a) or F.conv2d(a[0], a[1], None, a[2], a[3], 1, 8))
    x = torch.randn(2, 8, 6, 6)
    conv(x)  # NCHW: plain
    with torch.no_grad():
        conv(x.contiguous(memory_format=NHWC))  # no grad: plain
    assert calls == []
    conv(x.contiguous(memory_format=NHWC))
    assert len(calls) == 1


def test_lite0_uses_the_compiled_kernel_for_its_5x5_depthwise_convs():
    model = create_model("efficientnet_lite0", num_classes=10)
    n5 = sum(1 for m in model.modules() if type(m) is DepthwiseConv2d)
    assert n5 == 7  # stride-1 5×5 depthwise convs; stride-2 ones are timm's Conv2dSame (own padding)
    assert not any(type(m) is DepthwiseConv2d for m in create_model("resnet20_cifar").modules())


@pytest.mark.parametrize("fmt", [NHWC, torch.contiguous_format])
def test_global_avg_pool_gradient_keeps_the_layout(fmt):
    x = torch.randn(4, 16, 3, 3).contiguous(memory_format=fmt).requires_grad_(True)
    ref = F.adaptive_avg_pool2d(x, 1).flatten(1)
    out = GlobalAvgPool()(x)
    assert torch.equal(out, ref)
    g = torch.randn_like(out)
    (gx,), (gx_ref,) = torch.autograd.grad(out, [x], g), torch.autograd.grad(ref, [x], g)
    assert torch.equal(gx, gx_ref) and gx.is_contiguous(memory_format=fmt)


_HEAP = """
import ctypes
import numpy as np
from robustify.commands.common import keep_freed_memory

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(k, ctypes.c_size_t) for k in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = Info
on = keep_freed_memory()
a = np.ones(25_000_000)  # 200 MB: above glibc's 32 MB mmap ceiling
mapped = mallinfo2().hblkhd
del a
print(int(on), mapped >> 20, mallinfo2().fordblks >> 20)
"""


@pytest.mark.parametrize("setting", ["reuse", "default"])
def test_freed_memory_is_kept_for_reuse(setting):
    """`keep_freed_memory` (every robustify subcommand): a 200 MB block comes from the heap, not its own
    mmap, and stays there free for the next step's tensors instead of being unmapped (each fresh mmap
    faults its pages in, zeroed); ROBUSTIFY_MALLOC=default keeps glibc's behaviour."""
    import subprocess
    import sys

    env = dict(os.environ, ROBUSTIFY_MALLOC=setting)
    on, mapped_mb, free_kept_mb = map(int, subprocess.run([sys.executable, "-c", _HEAP], env=env, check=True,
                                                          capture_output=True, text=True).stdout.split())
    if setting == "reuse":
        assert on == 1 and mapped_mb < 190 and free_kept_mb >= 190  # (a few MB mapped before the call)
    else:
        assert on == 0 and mapped_mb >= 190 and free_kept_mb < 190
