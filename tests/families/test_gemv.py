"""The gemv family (csrc/cpu/gemv/): 1x1 layers with a handful of output positions
(squeeze-excitation layers on pooled 1x1 maps) as matrix-vector products reading the weight
in place. Forward and all gradients match torch in float64 over fuzzed 1x1 geometries in
both layouts (strides, paddings and groups that make positions differ from rows), the
selector picks the family up to 16 positions, and channels_last passes copy nothing."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import assert_channels_last_passes_copy_nothing, compare_with_torch, family

CL = torch.channels_last


@st.composite
def one_by_one_geometries(draw):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 70)), draw(st.integers(1, 40))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    return dict(
        n=draw(st.integers(1, 3)),
        c=groups * cg,
        k=groups * kg,
        h=h,
        w=w,
        stride=stride,
        pad=pad,
        groups=groups,
        bias=draw(st.booleans()),
        cl=draw(st.booleans()),
    )


@given(one_by_one_geometries())
def test_gemv_matches_torch_float64(geo):
    x = torch.randn(geo["n"], geo["c"], geo["h"], geo["w"], dtype=torch.float64)
    w = torch.randn(geo["k"], geo["c"] // geo["groups"], 1, 1, dtype=torch.float64)
    b = torch.randn(geo["k"], dtype=torch.float64) if geo["bias"] else None
    if geo["cl"]:
        x, w = x.contiguous(memory_format=CL), w.contiguous(memory_format=CL)
    args = (geo["stride"], geo["pad"], 1, geo["groups"])
    with fastconv.cpu_algorithm("gemv"):
        for p in ("forward", "grad_input", "grad_weight"):
            assert family(x, w, *args, p) == "gemv"
        compare_with_torch(x, w, b, *args)


# Squeeze-excitation layers of EfficientNet-B0, MobileNet-V3 and RegNet-Y (C -> K on 1x1).
SE_LAYERS = [(1152, 48), (48, 1152), (672, 168), (16, 4), (30, 120)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("n", [1, 8])
@pytest.mark.parametrize("c, k", SE_LAYERS)
def test_squeeze_excitation_layers_run_on_gemv(c, k, n, layout, dtype):
    x, w = torch.randn(n, c, 1, 1, dtype=dtype), torch.randn(k, c, 1, 1, dtype=dtype)
    if layout == "channels_last":
        x, w = x.contiguous(memory_format=CL), w.contiguous(memory_format=CL)
    for p in ("forward", "grad_input", "grad_weight"):
        assert family(x, w, 1, 0, 1, 1, p) == "gemv"
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    compare_with_torch(x, w, torch.randn(k, dtype=dtype), 1, 0, 1, 1, **tol)


def test_gemv_is_chosen_up_to_sixteen_positions():
    w = torch.randn(64, 32, 1, 1)
    assert family(torch.randn(16, 32, 1, 1), w) == "gemv"
    assert family(torch.randn(4, 32, 2, 2), w) == "gemv"
    assert family(torch.randn(17, 32, 1, 1), w) == "dense"
    assert family(torch.randn(2, 32, 3, 3), w) == "dense"
    # Grouped layers keep the families that fill lanes across groups; a 3x3 kernel is not
    # a matrix-vector product per position.
    assert family(torch.randn(1, 32, 1, 1), torch.randn(64, 8, 1, 1), groups=4) != "gemv"
    assert family(torch.randn(1, 32, 1, 1), torch.randn(64, 32, 3, 3), 1, 1) != "gemv"


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1)])
def test_channels_last_passes_copy_nothing(stride, pad):
    x, w = torch.randn(2, 40, 2, 2), torch.randn(24, 40, 1, 1)
    assert_channels_last_passes_copy_nothing(x, w, torch.randn(24), stride, pad, 1, 1)
