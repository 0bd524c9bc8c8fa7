"""Winograd F(2x2, 3x3) for dense 3x3 stride-1 layers (csrc/cpu/winograd/): forced with
fastconv.cpu_algorithm("winograd"), forward and all gradients match torch in float64 over
fuzzed geometries (odd sizes leave partial 2x2 tiles, small batches make tile chunks span
images); float32 error stays near torch's; auto picks it only where it pays."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import (
    assert_channels_last_passes_copy_nothing,
    compare_with_torch,
    family,
    nchw_passes_copied,
)


@st.composite
def winograd_geometries(draw):
    """Any padding at dilation 1; dilation d >= 2 with padding d ("same"), which runs as
    d*d phase layers -- sizes below, at and above multiples of d."""
    n, c, k = draw(st.integers(1, 3)), draw(st.integers(2, 40)), draw(st.integers(1, 40))
    d = draw(st.sampled_from([1, 1, 2, 3]))
    ph, pw = (draw(st.integers(0, 3)), draw(st.integers(0, 3))) if d == 1 else (d, d)
    h = max(1, 3 - 2 * ph) + draw(st.integers(0, 20))
    w = max(1, 3 - 2 * pw) + draw(st.integers(0, 40))
    return n, c, k, h, w, (ph, pw), d, draw(st.booleans())


@given(winograd_geometries(), st.sampled_from([torch.contiguous_format, torch.channels_last]))
def test_winograd_matches_torch_float64(geo, fmt):
    """Both layouts: channels_last runs the NHWC transforms (winograd/nhwc.h) in place."""
    n, c, k, h, w, padding, d, bias = geo
    x = torch.randn(n, c, h, w, dtype=torch.float64).contiguous(memory_format=fmt)
    wt = torch.randn(k, c, 3, 3, dtype=torch.float64)
    b = torch.randn(k, dtype=torch.float64) if bias else None
    with fastconv.cpu_algorithm("winograd"):
        assert family(x, wt, 1, padding, d) == "winograd"
        compare_with_torch(x, wt, b, 1, padding, d, 1, rtol=1e-9, atol=1e-10)


def test_winograd_gradcheck_and_gradgradcheck():
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return fastconv.conv2d(x, w, b, 1, 1)

    with fastconv.cpu_algorithm("winograd"):
        assert torch.autograd.gradcheck(f, (x, w, b))
        assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("c", [64, 256])
def test_winograd_float32_error_near_torchs(c):
    """The transforms add, subtract and halve, so float32 error stays within 3x torch's
    direct sum (README, "Winograd")."""
    x = torch.randn(2, c, 30, 30)
    w = torch.randn(64, c, 3, 3) / (3 * c**0.5)
    exact = F.conv2d(x.double(), w.double(), None, 1, 1)
    with fastconv.cpu_algorithm("winograd"):
        ours = (fastconv.conv2d(x, w, None, 1, 1).double() - exact).abs().max()
    theirs = (F.conv2d(x, w, None, 1, 1).double() - exact).abs().max()
    assert ours <= 3 * theirs, (ours, theirs)


def test_winograd_bitwise_equal_across_thread_counts():
    x, w = torch.randn(3, 32, 23, 17), torch.randn(40, 32, 3, 3)
    previous = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            with fastconv.cpu_algorithm("winograd"):
                outs.append(fastconv.conv2d(x, w, None, 1, 1))
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_auto_picks_winograd_where_it_pays():
    def algo(n, c, h, k=None, r=3, stride=1, dilation=1, groups=1):
        k = c if k is None else k
        x, w = torch.empty(n, c, h, h), torch.empty(k, c // groups, r, r)
        return family(x, w, stride, r // 2, dilation, groups)

    assert algo(4, 64, 56) == "winograd"  # ResNet-18 layer 1 (3136 tiles)
    assert algo(4, 128, 28) == "winograd"
    assert algo(4, 512, 7) == "winograd"  # 64 tiles: break-even
    assert algo(2, 512, 7) == "dense"  # 32 tiles do not pay for the transformed weight
    assert algo(4, 8, 56) == "dense"  # too shallow
    assert algo(4, 64, 56, stride=2) == "dense"
    x, w = torch.empty(2, 256, 28, 28), torch.empty(256, 256, 3, 3)
    assert family(x, w, 1, 2, 2) == "winograd"  # DeepLab: 4 phase layers of 14^2
    assert family(x, w, 1, 1, 2) == "dense"  # dilation 2, padding 1: not "same"
    assert algo(4, 64, 56, groups=2) == "dense"
    assert algo(4, 64, 56, r=5) == "dense"
    with fastconv.cpu_algorithm("plain"):
        assert algo(4, 64, 56) == "dense"
    with fastconv.cpu_algorithm("winograd"):
        assert algo(1, 2, 5, k=1) == "winograd"
        assert algo(4, 64, 56, stride=2) == "dense"  # forcing never applies where it cannot


@pytest.mark.parametrize("dilation", [1, 2])
def test_channels_last_passes_make_no_layout_copy(dilation):
    x = torch.randn(2, 16, 14, 12)
    w = torch.randn(24, 16, 3, 3)
    assert family(x.contiguous(memory_format=torch.channels_last), w, 1, dilation, dilation) == (
        "winograd"
    )
    assert_channels_last_passes_copy_nothing(x, w, torch.randn(24), 1, dilation, dilation, 1)


# NCHW callers' Winograd passes on the channels_last transforms through layout copies
# (select.cpp, kWinogradNhwcForNchwMaxPlane and kWinogradNhwcForNchwMinChannels): maps of
# up to 32^2 positions with 32 or more channels in and out. (N, C, H, K)
NCHW_PROMOTED = [
    ((2, 32, 14, 40), True),
    ((1, 40, 32, 32), True),  # 1024 positions
    ((1, 32, 33, 32), False),  # 1089
    ((2, 16, 14, 40), False),  # 16 input channels
    ((2, 40, 14, 24), False),  # 24 output channels
]


@pytest.mark.parametrize("layer, promoted", NCHW_PROMOTED, ids=lambda v: str(v))
def test_nchw_callers_run_small_maps_on_channels_last_transforms(layer, promoted):
    n, c, h, k = layer
    x = torch.randn(n, c, h, h, dtype=torch.float64)
    w = torch.randn(k, c, 3, 3, dtype=torch.float64)
    gy = torch.randn(n, k, h, h, dtype=torch.float64)
    args = ([1, 1], [1, 1], [1, 1], 1)
    copied = nchw_passes_copied(x, w, gy, *args, "winograd")
    assert copied == ({"forward", "grad_input", "grad_weight"} if promoted else set())
    compare_with_torch(x, w, torch.randn(k, dtype=torch.float64), *args)
