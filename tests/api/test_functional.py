"""fastconv.conv2d against torch.nn.functional.conv2d in float64: forward and all three
gradients over a hypothesis-generated space of geometries and memory layouts."""

import pytest
import torch
from hypothesis import given

import fastconv

from ..helpers import build, compare_with_torch, geometries


@given(geometries())
def test_matches_torch_float64(geo):
    x, w, b = build(geo)
    compare_with_torch(x, w, b, geo["stride"], geo["padding"], geo["dilation"], geo["groups"])


@given(geometries(max_channels=8))
def test_matches_torch_dense_float32(geo):
    x, w, b = build(geo, torch.float32)
    compare_with_torch(
        x,
        w,
        b,
        geo["stride"],
        geo["padding"],
        geo["dilation"],
        geo["groups"],
        rtol=1e-4,
        atol=1e-4,
    )


# Representative layers, fixed, so a regression names its shape: (N, C, H, W, K, R, S,
# stride, padding, dilation, groups).
LAYERS = [
    (1, 1, 6, 8, 1, 1, 2, 1, 0, 1, 1),  # the book's edge detector
    (2, 3, 32, 32, 3, 3, 3, 1, 1, 1, 3),  # per-channel RGB filter
    (2, 8, 20, 20, 16, 3, 3, 2, 1, 1, 8),  # depthwise, channel multiplier 2, stride 2
    (1, 4, 40, 40, 4, 31, 31, 1, 15, 1, 4),  # large-kernel depthwise
    (2, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1),  # ResNet-style 3x3
    (2, 16, 14, 14, 32, 1, 1, 1, 0, 1, 1),  # 1x1
    (1, 3, 64, 64, 8, 7, 7, 2, 3, 1, 1),  # 7x7 stride-2 stem
    (1, 16, 24, 24, 16, 3, 3, 1, 2, 2, 1),  # dilated
    (2, 32, 12, 12, 32, 3, 3, 1, 1, 1, 8),  # grouped (ResNeXt-style)
    (1, 13, 9, 11, 7, 4, 2, (3, 2), (2, 1), (1, 3), 1),  # odd everything
    # Rows wide enough for the vectorised stride-2 split, odd and even padding.
    (2, 8, 37, 67, 8, 3, 3, 2, 1, 1, 8),
    (1, 4, 30, 99, 8, 5, 5, 2, (0, 2), 1, 4),
    (1, 2, 21, 80, 2, 4, 3, 2, 0, (1, 2), 2),
    (1, 1, 40, 150, 1, 7, 7, (1, 3), (3, 0), (1, 2), 1),
    (3, 16, 14, 14, 16, 3, 3, 1, 1, 1, 16),  # 14x14: one vector per row
    (1, 8, 28, 28, 8, 13, 13, 1, 6, 1, 8),  # 13x13 on 28x28
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: "x".join(map(str, layer[:7])))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_layers(layer, dtype):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = layer
    x = torch.randn(n, c, h, w, dtype=dtype)
    wt = torch.randn(k, c // groups, r, s, dtype=dtype)
    b = torch.randn(k, dtype=dtype)
    tol = {} if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-4)
    compare_with_torch(x, wt, b, stride, padding, dilation, groups, **tol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_as_accurate_as_torch(dtype):
    """Half inputs compute in float32: error vs float64 at most 2x torch's own error."""
    x = torch.randn(2, 8, 16, 16, dtype=torch.float64)
    w = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    exact = torch.nn.functional.conv2d(x, w, padding=1, groups=2)
    ours = fastconv.conv2d(x.to(dtype), w.to(dtype), padding=1, groups=2).double()
    theirs = torch.nn.functional.conv2d(x.to(dtype), w.to(dtype), padding=1, groups=2).double()
    assert (ours - exact).abs().max() <= 2 * (theirs - exact).abs().max()


def test_fuzzer_regression_channels_last_weight_with_unit_height():
    """Shrunk by hypothesis: unbatched strided input, channels_last 2x2x1x2 weight, groups=2
    (torch's own backward got the weight grad wrong here; the oracle is contiguous)."""
    x = torch.randn(1, 4, 1, 2, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last)[0]
    w = torch.randn(2, 2, 1, 2, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    compare_with_torch(x, w, None, 1, "valid", 1, 2)


def test_empty_batch():
    x = torch.randn(0, 4, 8, 8, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, requires_grad=True)
    y = fastconv.conv2d(x, w, padding=1, groups=2)
    assert y.shape == (0, 6, 8, 8)
    y.sum().backward()
    assert x.grad.shape == x.shape and torch.equal(w.grad, torch.zeros_like(w))


def test_same_padding_even_kernel_is_asymmetric_like_torch():
    x = torch.randn(1, 2, 9, 10, dtype=torch.float64)
    w = torch.randn(3, 2, 4, 2, dtype=torch.float64)
    compare_with_torch(x, w, None, 1, "same", (1, 3), 1)


def test_nan_and_inf_propagate_like_torch():
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    x[0, 0, 3, 3] = float("nan")
    x[0, 0, 6, 1] = float("inf")
    w = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    y = fastconv.conv2d(x, w)
    ref = torch.nn.functional.conv2d(x, w)
    assert torch.equal(y.isnan(), ref.isnan()) and torch.equal(y.isinf(), ref.isinf())
    torch.testing.assert_close(y, ref, equal_nan=True)


@pytest.mark.parametrize("width", [12, 21, 40])
def test_inf_in_the_input_reaches_exactly_the_weight_taps_torch_says(width):
    """Grad-weight must not leak an inf through lanes past the output row's end (0 * inf is
    NaN): only the taps that really read the inf column may turn non-finite."""
    x = torch.randn(2, 3, 9, width, dtype=torch.float64)
    x[:, :, 4, width - 2] = float("inf")
    w = torch.randn(3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    grads = []
    for conv in (fastconv.conv2d, torch.nn.functional.conv2d):
        y = conv(x, w, None, 1, 0, 1, 3)
        (gw,) = torch.autograd.grad(y, w, torch.ones_like(y))
        grads.append(gw)
    ours, theirs = grads
    assert torch.equal(ours.isfinite(), theirs.isfinite())
    finite = theirs.isfinite()
    torch.testing.assert_close(ours[finite], theirs[finite])
