"""The rows family (csrc/cpu/rows/): plane-by-plane row kernels for one channel per group
and for grouped layers with few channels per group. Forced with fastconv.cpu_algorithm("rows"),
forward and all gradients match torch in float64 on rows wide enough to be read in place,
kernels tall enough to run in bands, fuzzed geometries of any kind, and the fused
one-to-one backward gives exactly what the separate passes give."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import build, compare_with_torch, family, geometries, vector_lanes


@given(geometries())
def test_rows_forced_match_torch_float64(geo):
    """The row kernels run any geometry when forced (several channels per group too)."""
    x, w, b = build(geo)
    with fastconv.cpu_algorithm("rows"):
        compare_with_torch(x, w, b, geo["stride"], geo["padding"], geo["dilation"], geo["groups"])


@given(
    st.integers(1, 2),
    st.sampled_from([(2, 2), (4, 4), (8, 2), (3, 8)]),  # (groups, channels per group)
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(0, 2),
    st.integers(1, 2),
)
def test_grouped_layers_with_few_channels_take_the_row_kernels(n, groups_cg, mult, k, pad, dil):
    """Grouped layers with 2 to 8 input channels per group and another number of output
    channels per group run plane by plane on the row kernels at stride 1, forward and both
    gradients."""
    groups, cg = groups_cg
    x = torch.randn(n, groups * cg, 9 + k, 11, dtype=torch.float64)
    w = torch.randn(groups * mult, cg, k, k, dtype=torch.float64)
    b = torch.randn(groups * mult, dtype=torch.float64)
    # As many output as input channels per group, groups that fit a vector: the grouped
    # family (select.cpp), which stages these NCHW tensors in bands.
    grouped = mult == cg and vector_lanes(x.dtype) % cg == 0
    assert family(x, w, 1, pad, dil, groups) == ("grouped" if grouped else "rows")
    compare_with_torch(x, w, b, 1, pad, dil, groups, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "shape, padding, dilation",
    [((2, 1, 300, 70), 1, 1), ((1, 3, 97, 130), 0, 2), ((2, 5, 64, 33), 3, 1)],
    ids=["same", "valid-dilated", "wider"],
)
def test_fused_one_to_one_backward_equals_separate_passes(shape, padding, dilation):
    # Both gradients of a one-to-one stride-1 layer come from one fused pass over row
    # chunks (rows/driver.cpp, backward_fused). It must give exactly what the separate
    # grad-input and grad-weight passes give, and match torch in float64.
    c = shape[1]
    x = torch.randn(shape, dtype=torch.float64)
    w = torch.randn(c, 1, 3, 3, dtype=torch.float64)
    args = ([1, 1], [padding] * 2, [dilation] * 2, c)
    y = torch.nn.functional.conv2d(x, w, None, 1, padding, dilation, c)
    gy = torch.randn_like(y)
    gx, gw, _ = torch.ops.fastconv.conv2d_backward(gy, x, w, *args, [True, True, False])
    gx_alone = torch.ops.fastconv.conv2d_backward(gy, x, w, *args, [True, False, False])[0]
    gw_alone = torch.ops.fastconv.conv2d_backward(gy, x, w, *args, [False, True, False])[1]
    assert torch.equal(gx, gx_alone)
    assert torch.equal(gw, gw_alone)
    ref = torch.ops.aten.convolution_backward(
        gy, x, w, None, [1, 1], [padding] * 2, [dilation] * 2, False, [0, 0], c, [True, True, False]
    )
    torch.testing.assert_close(gx, ref[0])
    torch.testing.assert_close(gw, ref[1])


@pytest.mark.parametrize(
    "hw, kernel, stride, padding, dilation",
    [
        ((9, 300), (3, 3), 1, 1, 1),  # interior tiles in place, both edges staged
        ((5, 257), (3, 5), 1, (0, 2), 1),  # row one column past whole vectors
        ((40, 211), (4, 3), (2, 1), (1, 17), (2, 3)),  # padding wider than a vector
        ((6, 190), (1, 7), (3, 1), 0, (1, 1)),  # no padding: edge tiles read in place
        ((70, 180), (7, 7), 1, 3, 1),  # several staged blocks of rows
        ((3, 400), (2, 31), 1, (1, 15), 1),  # wide kernel, the halo longer than a vector
    ],
    ids=["3x3", "ragged", "wide-pad", "valid", "blocks", "wide-kernel"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wide_rows_read_in_place(hw, kernel, stride, padding, dilation, dtype):
    # Forward tiles whose columns lie inside the image read x (and grad-input's grad_output)
    # in place; only the edges are staged (rows/staging.h, StagedRows::in_place). Rows
    # here are wide enough for both kinds of tile; the 1x1 grad-input case has a negative
    # padding in its forward form.
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for c in (1, 2):
        x = torch.randn(2, c, *hw, dtype=dtype)
        w = torch.randn(c, 1, *kernel, dtype=dtype)
        b = torch.randn(c, dtype=dtype)
        compare_with_torch(x, w, b, stride, padding, dilation, c, **tol)
    x = torch.randn(1, 1, 5, 300, dtype=dtype)
    compare_with_torch(x, torch.randn(1, 1, 1, 1, dtype=dtype), None, 1, 2, 1, 1, **tol)


@pytest.mark.parametrize(
    "hw, kernel, padding",
    [((20, 150), (8, 3), (3, 1)), ((31, 90), (9, 9), 4), ((40, 23), (15, 2), (7, 0))],
    ids=["8-rows", "9x9", "15-rows"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tall_kernels_run_in_bands_of_rows(hw, kernel, padding, dtype):
    # Kernels taller than 7 rows run as bands of at most 7 kernel rows, each accumulating
    # into the output (rows/staging.h, kernel_row_band); grad-weight sums each band's
    # rows into its own rows of the weight gradient.
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    with fastconv.cpu_algorithm("rows"):  # not the FFT, whatever its cost model says
        for c in (1, 3):
            x = torch.randn(2, c, *hw, dtype=dtype)
            w = torch.randn(c, 1, *kernel, dtype=dtype)
            compare_with_torch(x, w, torch.randn(c, dtype=dtype), 1, padding, 1, c, **tol)


@st.composite
def wide_one_channel_geometries(draw):
    # Rows wide enough for in-place tiles (64 columns and more) and kernels up to 15 rows
    # (bands): the row kernels' paths the small geometries above never reach.
    r, s = draw(st.integers(1, 15)), draw(st.integers(1, 9))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.sampled_from([1, 1, 1, 2])))
    pad = (draw(st.integers(0, r + 2)), draw(st.integers(0, 2 * s + 10)))
    h = max(1, dil[0] * (r - 1) + 1 - 2 * pad[0]) + draw(st.integers(0, 12))
    w = max(64, dil[1] * (s - 1) + 1 - 2 * pad[1]) + draw(st.integers(0, 200))
    return dict(
        c=draw(st.integers(1, 2)),
        hw=(h, w),
        kernel=(r, s),
        stride=stride,
        padding=pad,
        dilation=dil,
    )


@given(wide_one_channel_geometries())
def test_wide_one_channel_rows_match_torch_float64(geo):
    c = geo["c"]
    x = torch.randn(2, c, *geo["hw"], dtype=torch.float64)
    w = torch.randn(c, 1, *geo["kernel"], dtype=torch.float64)
    b = torch.randn(c, dtype=torch.float64)
    with fastconv.cpu_algorithm("rows"):
        compare_with_torch(x, w, b, geo["stride"], geo["padding"], geo["dilation"], c)
