"""The dense family (csrc/cpu/dense/): forced with fastconv.cpu_algorithm("dense"), forward and
all gradients match torch in float64 over fuzzed geometries in both layouts -- NCHW on the
packed im2col tiles, channels_last on the kernels that gather every tap's channel run in
place (dense/nhwc.h) -- and channels_last passes make no layout copy."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import (
    assert_channels_last_passes_copy_nothing,
    build,
    compare_with_torch,
    family,
    geometries,
)

CL = torch.channels_last


@given(geometries(max_channels=8), st.sampled_from(["contiguous", "channels_last"]))
def test_dense_forced_matches_torch_float64(geo, layout):
    geo = dict(geo, layout=layout)
    x, w, b = build(geo)
    with fastconv.cpu_algorithm("dense"):
        compare_with_torch(x, w, b, geo["stride"], geo["padding"], geo["dilation"], geo["groups"])


# (N, C, H, W, K, R, S, stride, padding, dilation, groups): channel counts around the panel
# width (32 floats, 16 doubles on AVX-512), strides that leave column phases without taps.
NHWC_LAYERS = [
    (2, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1),
    (1, 48, 9, 11, 40, 1, 1, 1, 0, 1, 1),
    (2, 16, 15, 13, 70, 3, 3, 2, 1, 1, 1),
    (1, 3, 30, 30, 17, 7, 7, 2, 3, 1, 1),
    (1, 24, 10, 10, 36, 3, 3, 1, 2, 2, 2),
    (2, 8, 9, 9, 8, 1, 1, 3, 0, 1, 1),
    (1, 33, 8, 8, 33, 5, 3, (2, 3), (2, 1), (1, 2), 1),
    (3, 128, 4, 4, 256, 1, 1, 2, 0, 1, 1),
]


@pytest.mark.parametrize("layer", NHWC_LAYERS, ids=lambda layer: "x".join(map(str, layer[:7])))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_channels_last_layers(layer, dtype):
    n, c, h, w_, k, r, s, stride, padding, dilation, groups = layer
    x = torch.randn(n, c, h, w_, dtype=dtype).contiguous(memory_format=CL)
    w = torch.randn(k, c // groups, r, s, dtype=dtype)
    b = torch.randn(k, dtype=dtype)
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    with fastconv.cpu_algorithm("dense"):
        for p in ("forward", "grad_input", "grad_weight"):
            assert family(x, w, stride, padding, dilation, groups, p) == "dense"
        compare_with_torch(x, w, b, stride, padding, dilation, groups, **tol)


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_passes_make_no_layout_copy(stride):
    x = torch.randn(2, 32, 12, 12)
    w = torch.randn(48, 32, 3, 3)
    with fastconv.cpu_algorithm("dense"):
        assert family(x.contiguous(memory_format=CL), w, stride, 1) == "dense"
        assert_channels_last_passes_copy_nothing(x, w, torch.randn(48), stride, 1, 1, 1)
