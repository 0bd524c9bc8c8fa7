"""The grouped family (csrc/cpu/grouped/): grouped layers whose groups fit a vector (ResNeXt's
4 channels per group, RegNet's 8) or fill two (16 on AVX2), on channels_last activations.
Forward and all gradients match torch in float64 over fuzzed geometries (any stride,
dilation, padding; channel counts leaving a partial vector), and no pass copies to another
layout."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import (
    LAYOUT_COPIES,
    assert_channels_last_passes_copy_nothing,
    compare_with_torch,
    family,
    grouped_fits,
    on_one_and_many_threads,
    vector_lanes,
)

CL = torch.channels_last


@st.composite
def grouped_geometries(draw):
    gw = draw(st.sampled_from([2, 4, 8, 16, 24]))
    groups = draw(st.integers(2, 7))
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    h = max(1, dil[0] * (r - 1) + 1 - 2 * pad[0]) + draw(st.integers(0, 12))
    w = max(1, dil[1] * (s - 1) + 1 - 2 * pad[1]) + draw(st.integers(0, 12))
    n, bias = draw(st.integers(1, 3)), draw(st.booleans())
    layout = draw(st.sampled_from([CL, torch.contiguous_format]))
    return n, gw, groups, h, w, r, s, stride, pad, dil, bias, layout


@given(grouped_geometries())
def test_grouped_matches_torch_float64(geo):
    """Both layouts: channels_last read in place, NCHW staged in bands (grouped/driver.cpp)."""
    n, gw, groups, h, w, r, s, stride, pad, dil, bias, layout = geo
    c = gw * groups
    x = torch.randn(n, c, h, w, dtype=torch.float64).contiguous(memory_format=layout)
    wt = torch.randn(c, gw, r, s, dtype=torch.float64).contiguous(memory_format=layout)
    b = torch.randn(c, dtype=torch.float64) if bias else None
    # Groups must fit a vector or two. Forced: on few positions, whole-vector groups
    # (float64's 8) run as dense by default.
    with fastconv.cpu_algorithm("grouped"):
        if grouped_fits(gw, x.dtype):
            for p in ("forward", "grad_input", "grad_weight"):
                assert family(x, wt, stride, pad, dil, groups, p) == "grouped"
        compare_with_torch(x, wt, b, stride, pad, dil, groups)


@given(grouped_geometries(), st.sampled_from([1, 2, 3]))
def test_groups_of_whole_vectors_match_torch_float32(geo, vectors):
    """A group per vector, or (AVX2) per two or three (16 float32 channels on AVX-512; 8, 16
    or 24 on AVX2): the kernels broadcast the group's input channels instead of permuting
    them (float64 meets this path at gw = its lanes and twice that)."""
    n, _, groups, h, w, r, s, stride, pad, dil, bias, layout = geo
    gw = vectors * vector_lanes(torch.float32)
    if not grouped_fits(gw):
        pytest.skip("groups of this width do not fit this build's vectors")
    c = gw * groups
    x = torch.randn(n, c, h, w).contiguous(memory_format=layout)
    wt = torch.randn(c, gw, r, s).contiguous(memory_format=layout)
    b = torch.randn(c) if bias else None
    with fastconv.cpu_algorithm("grouped"):  # these few positions run as dense by default
        for p in ("forward", "grad_input", "grad_weight"):
            assert family(x, wt, stride, pad, dil, groups, p) == "grouped"
        compare_with_torch(x, wt, b, stride, pad, dil, groups, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gw", [4, 8, 16, 24, 32])  # 32: two AVX-512 vectors, past the kernels
def test_regnet_and_resnext_layers(gw, dtype):
    x = torch.randn(2, 6 * gw, 24, 24, dtype=dtype).contiguous(memory_format=CL)
    w = torch.randn(6 * gw, gw, 3, 3, dtype=dtype).contiguous(memory_format=CL)
    if grouped_fits(gw, dtype):
        # Strided channels_last groups of two or three vectors run the forward and grad-input as a
        # GEMM per group (select.cpp); stride 1 and the grad-weight stay grouped.
        two_vectors = gw > vector_lanes(dtype)
        assert family(x, w, 2, 1, 1, 6) == ("dense" if two_vectors else "grouped")
        assert family(x, w, 2, 1, 1, 6, "grad_input") == ("dense" if two_vectors else "grouped")
        assert family(x, w, 2, 1, 1, 6, "grad_weight") == "grouped"
        assert family(x, w, 1, 1, 1, 6) == "grouped"
    else:
        assert family(x, w, 1, 1, 1, 6) != "grouped"
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for stride in (1, 2):
        compare_with_torch(x, w, torch.randn(6 * gw, dtype=dtype), stride, 1, 1, 6, **tol)


def test_nchw_grouped_layers_take_the_family_and_stay_nchw():
    """NCHW callers' grouped layers run on the family in every pass, whatever the plane
    (the kernels stage NCHW bands), and get NCHW results."""
    x = torch.randn(2, 32, 24, 24, dtype=torch.float64)
    big = torch.randn(1, 32, 48, 48, dtype=torch.float64)
    w4, w8 = (torch.randn(32, gw, 3, 3, dtype=torch.float64) for gw in (4, 8))
    passes = ("forward", "grad_input", "grad_weight")
    for xt, wt, groups, stride in ((x, w8, 4, 1), (x, w4, 8, 2), (x, w4, 8, 1), (big, w8, 4, 1)):
        fits = grouped_fits(wt.shape[1], x.dtype)
        other = "rows" if stride == 1 else "dense"
        for p in passes:
            assert family(xt, wt, stride, 1, 1, groups, p) == ("grouped" if fits else other), p
        y = torch.ops.fastconv.conv2d(xt, wt, None, [stride] * 2, [1, 1], [1, 1], groups)
        assert y.is_contiguous()
        compare_with_torch(xt, wt, None, stride, 1, 1, groups)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whole_vector_groups_on_few_positions_run_as_dense(dtype):
    """Channels_last groups of a whole vector of channels that fill a 64-byte dense panel
    (16 float32 or 8 float64 channels) on fewer than 256 positions in the batch
    (select.cpp's kGroupedBroadcastMinPositions) leave the family: a GEMM per group (or,
    with float64's 8 channels per group, the row kernels); narrower groups stay (AVX2's
    whole-vector groups of 8 float32 channels too), and so do NCHW callers' (their bands
    staged)."""
    gw = vector_lanes(dtype)
    if gw < 4:
        pytest.skip("this build's vectors hold no group of several channels")
    fills_panel = gw * torch.empty((), dtype=dtype).element_size() >= 64
    w = torch.randn(4 * gw, gw, 3, 3, dtype=dtype).contiguous(memory_format=CL)
    for n, hw, grouped in ((1, 14, not fills_panel), (2, 12, True), (1, 16, True)):
        x = torch.randn(n, 4 * gw, hw, hw, dtype=dtype).contiguous(memory_format=CL)
        for p in ("forward", "grad_input", "grad_weight"):
            assert (family(x, w, 1, 1, 1, 4, p) == "grouped") == grouped, (n, hw, p)
        tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-3)
        compare_with_torch(x, w, None, 1, 1, 1, 4, **tol)
        assert family(x.contiguous(), w.contiguous(), 1, 1, 1, 4) == "grouped", (n, hw)
    narrow = torch.randn(8 * (gw // 2), gw // 2, 3, 3, dtype=dtype).contiguous(memory_format=CL)
    x = torch.randn(1, 8 * (gw // 2), 14, 14, dtype=dtype).contiguous(memory_format=CL)
    assert family(x, narrow, 1, 1, 1, 8) == "grouped"


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_passes_make_no_layout_copy(stride):
    gw = min(8, vector_lanes(torch.float64))  # the helper runs float64; RegNet has 8 per group
    x, w = torch.randn(2, 32, 24, 24), torch.randn(32, gw, 3, 3)
    assert_channels_last_passes_copy_nothing(x, w, torch.randn(32), stride, 1, 1, 32 // gw)


@pytest.mark.parametrize("memory_format", [CL, torch.contiguous_format], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("gw,stride", [(8, 1), (4, 2), (16, 1), (24, 1)])
def test_grad_weight_slabs_match_torch_and_do_not_depend_on_threads(gw, stride, memory_format):
    """Many positions: the grad-weight runs in fixed slabs of output row bands
    (runtime/parallel.h's reduction_slices) whose partials are added in order, so the
    float32 bits are the same on one thread and on several; NCHW activations too, staged
    band by band."""
    if not grouped_fits(gw):
        pytest.skip("groups of this width do not fit this build's vectors")
    groups, n, hw = 5, 2, 50 * stride
    x = torch.randn(n, gw * groups, hw, hw, dtype=torch.float64).contiguous(
        memory_format=memory_format
    )
    w = torch.randn(gw * groups, gw, 3, 3, dtype=torch.float64).contiguous(
        memory_format=memory_format
    )
    gy = torch.randn(n, gw * groups, 50, 50, dtype=torch.float64).contiguous(
        memory_format=memory_format
    )
    args = ([stride] * 2, [1, 1], [1, 1], groups, [False, True, False])
    with fastconv.cpu_algorithm("grouped"):  # large NCHW planes take dense gradients
        assert family(x.float(), w.float(), stride, 1, 1, groups, "grad_weight") == "grouped"
        got = torch.ops.fastconv.conv2d_backward(gy, x, w, *args)[1]
        want = torch.ops.aten.convolution_backward(
            gy, x, w, None, *args[:3], False, [0, 0], *args[3:]
        )
        torch.testing.assert_close(got, want[1])
        one, many = on_one_and_many_threads(
            lambda: torch.ops.fastconv.conv2d_backward(gy.float(), x.float(), w.float(), *args)[1]
        )
    assert torch.equal(one, many)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "gw,stride,pad,dil",
    [(8, 1, 1, 1), (4, 2, 2, 1), (8, 1, 2, 2), (2, 3, 0, 1), (16, 1, 1, 1), (24, 2, 1, 1)],
)
def test_nchw_passes_stage_bands_without_layout_copies(dtype, gw, stride, pad, dil):
    """NCHW activations: every pass stages bands of rows as NHWC inside its tasks
    (grouped/driver.cpp: the forward, the stride-1 grad-input as a forward, the strided
    grad-input and the grad-weight) and makes no layout copy. 40x30 maps and 4 images cut
    every pass into several bands (the last one short) and slabs, and 5 vectors and a part
    into two chunks of channels; the results match torch."""
    lanes = vector_lanes(dtype)
    if not grouped_fits(gw, dtype):
        pytest.skip("groups of this width do not fit this build's vectors")
    c = -(-(5 * lanes + gw) // gw) * gw  # whole groups
    x = torch.randn(4, c, 40, 30, dtype=dtype)
    w = torch.randn(c, gw, 3, 3, dtype=dtype)
    b = torch.randn(c, dtype=dtype)
    args = ([stride] * 2, [pad] * 2, [dil] * 2, c // gw)
    mask = {"grad_input": [True, False, False], "grad_weight": [False, True, False]}
    gy = torch.randn_like(F.conv2d(x, w, b, *args))
    with fastconv.cpu_algorithm("grouped"):
        for p in ("forward", "grad_input", "grad_weight"):
            assert family(x, w, *args, p) == "grouped", p
            with torch.profiler.profile() as prof:
                if p == "forward":
                    got = torch.ops.fastconv.conv2d(x, w, b, *args)
                else:
                    got = torch.ops.fastconv.conv2d_backward(gy, x, w, *args, mask[p])
            copies = [e.name for e in prof.events() if e.name in LAYOUT_COPIES]
            assert copies == [], (p, copies)
            if p != "forward":
                got = got[0] if p == "grad_input" else got[1]
            assert got.is_contiguous(), p
            want = (
                F.conv2d(x, w, b, *args)
                if p == "forward"
                else torch.ops.aten.convolution_backward(
                    gy, x, w, None, *args[:3], False, [0, 0], args[3], mask[p]
                )[0 if p == "grad_input" else 1]
            )
            tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-3)
            torch.testing.assert_close(got, want, **tol, msg=lambda m, p=p: f"{p}: {m}")
