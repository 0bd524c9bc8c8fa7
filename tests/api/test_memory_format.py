"""Results come in F.conv2d's memory format: the output, grad_input and grad_weight are
channels_last exactly when torch's are, for every family, dtype and combination of input and
weight layouts (size-1 dimensions included), and the fake kernels agree with the real ones."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

import fastconv

CL = torch.channels_last

# (id, input shape, weight shape, stride, padding, groups)
GEOMETRIES = [
    ("dense", (2, 8, 10, 10), (16, 8, 3, 3), 1, 1, 1),
    ("winograd", (2, 16, 12, 12), (16, 16, 3, 3), 1, 1, 1),
    ("strided", (2, 8, 11, 10), (12, 8, 3, 3), 2, 1, 1),
    ("depthwise", (2, 16, 10, 10), (16, 1, 3, 3), 1, 1, 16),
    ("multiplier", (2, 8, 10, 10), (16, 1, 3, 3), 1, 1, 8),
    ("grouped", (2, 8, 10, 10), (8, 2, 3, 3), 1, 1, 4),
    ("one-channel", (2, 1, 10, 10), (4, 1, 3, 3), 1, 1, 1),
    ("one-pixel", (2, 8, 1, 1), (16, 8, 1, 1), 1, 1, 1),
    ("squeeze-excitation", (2, 8, 1, 1), (16, 8, 1, 1), 1, 0, 1),
    ("one-output-channel", (2, 8, 10, 10), (1, 8, 3, 3), 1, 1, 1),
    ("large-kernel", (1, 1, 40, 40), (1, 1, 25, 25), 1, 12, 1),
]
LAYOUTS = ["contiguous", "channels_last", "channels_last_view"]
ALGORITHMS = ["auto", "plain", "rows", "blocked", "dense", "winograd", "fft", "gemv"]


def make(shape, layout, dtype):
    t = torch.randn(shape, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        return t.contiguous(memory_format=CL)
    if layout == "channels_last_view":  # strided, channels_last-like order
        big = torch.zeros(*shape[:-1], shape[-1] * 2, dtype=dtype).contiguous(memory_format=CL)
        big[..., ::2] = t
        return big[..., ::2]
    return t


def layout(t):
    return t.is_contiguous(), t.is_contiguous(memory_format=CL)


def results(fn, x, w, stride, padding, groups):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    y = fn(x, w, None, stride, padding, 1, groups)
    gy = torch.randn(y.shape, dtype=y.dtype)  # contiguous, whatever y's format
    return (y, *torch.autograd.grad(y, (x, w), gy))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: g[0])
def test_results_have_torchs_memory_format(geo, dtype, algorithm):
    _, xs, ws, stride, padding, groups = geo
    for x_layout, w_layout in itertools.product(LAYOUTS, repeat=2):
        x, w = make(xs, x_layout, dtype), make(ws, w_layout, dtype)
        with fastconv.cpu_algorithm(algorithm):
            ours = results(fastconv.conv2d, x, w, stride, padding, groups)
        theirs = results(F.conv2d, x, w, stride, padding, groups)
        for name, a, e in zip(("output", "grad_input", "grad_weight"), ours, theirs):
            # Which formats the memory order satisfies; where size-1 dimensions make it
            # both, torch's own backends differ in the strides they give (float32 takes
            # channels_last's, float64 contiguous ones), so strides proper are compared
            # with the fake kernels' below.
            assert layout(a) == layout(e), (name, x_layout, w_layout, a.stride(), e.stride())
        tol = {
            torch.float64: {},
            torch.float32: dict(rtol=1e-4, atol=1e-4),
            torch.bfloat16: dict(rtol=2e-2, atol=2e-1),
        }[dtype]
        torch.testing.assert_close(ours[0], theirs[0].to(ours[0].dtype), **tol)


@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: g[0])
def test_fake_kernels_give_the_real_strides(geo):
    _, xs, ws, stride, padding, groups = geo
    args = ([stride] * 2, [padding] * 2, [1, 1], groups)
    for x_layout, w_layout in itertools.product(LAYOUTS, repeat=2):
        x, w = make(xs, x_layout, torch.float32), make(ws, w_layout, torch.float32)
        y = torch.ops.fastconv.conv2d(x, w, None, *args)
        grads = torch.ops.fastconv.conv2d_backward(y, x, w, *args, [True, True, True])
        with FakeTensorMode(allow_non_fake_inputs=False) as mode:
            fx, fw = mode.from_tensor(x), mode.from_tensor(w)
            fy = torch.ops.fastconv.conv2d(fx, fw, None, *args)
            fgrads = torch.ops.fastconv.conv2d_backward(fy, fx, fw, *args, [True, True, True])
        for name, real, fake in zip(("output", "gx", "gw", "gb"), (y, *grads), (fy, *fgrads)):
            assert real.stride() == fake.stride(), (name, x_layout, w_layout)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("c, h, w", [(2, 7, 9), (3, 5, 5), (6, 13, 11), (18, 9, 8), (34, 3, 70)])
def test_layout_copies_keep_every_value(c, h, w, dtype):
    """Families whose kernels read one layout get the other through fastconv's own
    transposing copies (csrc/cpu/layout/), in and out: an identity 1x1 layer gives back its
    input bit for bit, for channel and position counts that leave ragged vectors."""
    nchw = torch.randn(2, c, h, w, dtype=dtype)
    depthwise = torch.ones(c, 1, 1, 1, dtype=dtype)
    x = nchw.contiguous(memory_format=CL)  # NCHW kernels for a channels_last caller
    with fastconv.cpu_algorithm("rows"), torch.profiler.profile() as prof:
        y = fastconv.conv2d(x, depthwise, None, 1, 0, 1, c)
    assert "fastconv::layout_copy" in [e.name for e in prof.events()]
    assert layout(y) == layout(F.conv2d(x, depthwise, None, 1, 0, 1, c))
    assert torch.equal(y, x)
    # Channels_last kernels for an NCHW caller: a 1x1 layer on maps under 64 positions in a
    # batch (select.cpp promotes it), here an identity on 16 + c channels.
    d = 16 + c
    x = torch.randn(2, d, min(h, 7), min(w, 9), dtype=dtype)
    eye = torch.eye(d, dtype=dtype).view(d, d, 1, 1)
    with torch.profiler.profile() as prof:
        y = fastconv.conv2d(x, eye)
    assert "fastconv::layout_copy" in [e.name for e in prof.events()]
    assert y.is_contiguous()
    assert torch.equal(y, x)
