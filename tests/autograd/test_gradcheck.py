"""First and second derivatives by finite differences, float64 (gradcheck/gradgradcheck)."""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import fastconv

GEOMETRIES = [
    # (N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
    (1, 1, 6, 8, 1, 1, 2, 1, 0, 1, 1, False),
    (2, 2, 7, 6, 2, 3, 3, 1, 1, 1, 2, True),  # depthwise
    (1, 2, 9, 8, 4, 3, 2, 2, 1, 1, 2, True),  # depthwise, multiplier 2, strided
    (2, 3, 6, 7, 4, 3, 3, 1, 1, 1, 1, True),  # dense
    (1, 4, 9, 9, 2, 3, 3, (2, 1), (0, 2), (2, 1), 2, True),  # grouped, strided, dilated
    (1, 3, 5, 5, 2, 1, 1, 2, 0, 1, 1, False),  # 1x1 strided
]


def tensors(geo):
    n, c, h, w, k, r, s, stride, padding, dilation, groups, bias = geo
    opts = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, c, h, w, **opts)
    wt = torch.randn(k, c // groups, r, s, **opts)
    b = torch.randn(k, **opts) if bias else None
    return (x, wt, b), (stride, padding, dilation, groups)


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_gradcheck(geo):
    inputs, args = tensors(geo)
    assert gradcheck(lambda x, w, b: fastconv.conv2d(x, w, b, *args), inputs)


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_gradgradcheck(geo):
    inputs, args = tensors(geo)
    assert gradgradcheck(lambda x, w, b: fastconv.conv2d(x, w, b, *args), inputs)


def test_double_backward_matches_torch():
    """Gradient of a gradient-penalty term, the way WGAN-GP uses double backward."""
    x = torch.randn(2, 4, 10, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    results = []
    for conv in (fastconv.conv2d, torch.nn.functional.conv2d):
        y = conv(x, w, None, 1, 1, 1, 2)
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum(), (x, w)))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)
