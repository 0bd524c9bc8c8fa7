"""bfloat16 on the CPU: dense layers run on the AVX-512 BF16 kernel (vdpbf16ps,
csrc/cpu/dense_bf16/) where the CPU has it, forward and stride-1 grad-input; everything
else computes in float32. Either way the error against float64 must be no worse than
torch's own bfloat16 convolution's."""

import os

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import family, on_one_and_many_threads

# (N, C, H, W, K, R, S, stride, padding, dilation, groups): odd C*R*S (a half pair), K not a
# multiple of the 6-row panel, positions not a multiple of 32, groups, stride, dilation,
# 1x1 and a stem.
LAYERS = [
    (2, 8, 16, 16, 8, 3, 3, 1, 1, 1, 2),
    (1, 13, 9, 11, 7, 4, 2, 1, (2, 1), (1, 3), 1),
    (2, 64, 14, 14, 70, 3, 3, 1, 1, 1, 1),
    (1, 3, 40, 33, 17, 7, 7, 2, 3, 1, 1),
    (2, 32, 9, 9, 40, 1, 1, 1, 0, 1, 4),
    (1, 5, 37, 35, 13, 3, 5, 1, 2, 2, 1),
    (1, 300, 6, 6, 12, 3, 3, 1, 1, 1, 1),  # C*R*S = 2700: several 256-deep slices
]


def tensors(layer):
    n, c, h, w, k, r, s, *_, groups = layer
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g).bfloat16()
    wt = torch.randn(k, c // groups, r, s, generator=g).bfloat16()
    b = torch.randn(k, generator=g).bfloat16()
    return x, wt, b


@pytest.mark.parametrize("layer", LAYERS, ids=str)
def test_bf16_dense_forward_and_grads_as_accurate_as_torch(layer):
    x, w, b = tensors(layer)
    check_against_torch(x, w, b, layer[7:])


@st.composite
def dense_layers(draw):
    """Several channels per group, any stride, padding, dilation, both layouts."""
    groups, cg, kg = draw(st.integers(1, 3)), draw(st.integers(2, 12)), draw(st.integers(1, 40))
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, dil = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = draw(st.integers(0, 2))
    h = max(1, dil * (r - 1) + 1 - 2 * pad) + draw(st.integers(0, 10))
    w = max(1, dil * (s - 1) + 1 - 2 * pad) + draw(st.integers(0, 10))
    n = draw(st.integers(1, 3))
    return (n, groups * cg, h, w, groups * kg, r, s, stride, pad, dil, groups), draw(st.booleans())


@given(dense_layers())
def test_bf16_fuzzed_layers_as_accurate_as_torch(case):
    layer, channels_last = case
    x, w, b = tensors(layer)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    check_against_torch(x, w, b, layer[7:])


def check_against_torch(x, w, b, args):
    """Forward and both gradients in bfloat16: error against float64 at most twice torch's."""
    exact = F.conv2d(x.double(), w.double(), b.double(), *args)
    ours = fastconv.conv2d(x, w, b, *args)
    theirs = F.conv2d(x, w, b, *args)
    assert ours.dtype == torch.bfloat16
    assert (ours.double() - exact).abs().max() <= 2 * (theirs.double() - exact).abs().max()

    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    gy = torch.randn(exact.shape).bfloat16()
    got = torch.autograd.grad(fastconv.conv2d(xg, wg, None, *args), (xg, wg), gy)
    xt, wt = x.clone().requires_grad_(), w.clone().requires_grad_()
    theirs = torch.autograd.grad(F.conv2d(xt, wt, None, *args), (xt, wt), gy)
    xd, wd = x.double().requires_grad_(), w.double().requires_grad_()
    want = torch.autograd.grad(F.conv2d(xd, wd, None, *args), (xd, wd), gy.double())
    for name, a, t, e in zip(("input", "weight"), got, theirs, want):
        assert a.dtype == torch.bfloat16, name
        err, torch_err = (a.double() - e).abs().max(), (t.double() - e).abs().max()
        assert err <= 2 * torch_err + 1e-6 * e.abs().max(), (name, err, torch_err)


def test_bf16_dense_layers_take_the_bf16_kernel_where_the_cpu_has_it():
    x, w, _ = tensors(LAYERS[2])

    # Without the kernel, bfloat16 (like float16) is computed in float32 by the float32
    # family (implicit GEMM or Winograd).
    f32 = family(x.float(), w.float(), 1, 1)
    assert f32 in ("dense", "winograd")
    assert family(x.half(), w.half(), 1, 1) == f32
    if not fastconv.cpu_has_bf16_kernel():
        assert family(x, w, 1, 1) == f32
        return
    assert family(x, w, 1, 1) == "dense_bf16"
    # stride-1 grad-input is a bf16 forward pass; grad-weight and strided grad-input float32
    assert family(x, w, 1, 1, pass_="grad_input") == "dense_bf16"
    assert family(x, w, 2, 1, pass_="grad_input") == "dense"
    assert family(x, w, 1, 1, pass_="grad_weight") == "dense"


def test_this_machine_has_the_bf16_kernel_when_its_cpu_says_so():
    """Guards against the kernel silently not being built or detected (the CI machine is
    a Zen 4 with avx512_bf16)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    allowed = os.environ.get("FASTCONV_CPU_ISA", "avx512") == "avx512"  # the ISA cap
    has = " avx512_bf16" in flags and " avx512bw" in flags
    assert fastconv.cpu_has_bf16_kernel() == (has and allowed)


def test_bf16_kernel_is_deterministic_across_thread_counts():
    x, w, b = tensors(LAYERS[2])
    one, many = on_one_and_many_threads(lambda: fastconv.conv2d(x, w, b, 1, 1))
    assert torch.equal(one, many)
