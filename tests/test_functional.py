"""fastconv.conv2d against torch.nn.functional.conv2d in float64: forward and all three
gradients over a hypothesis-generated space of geometries and memory layouts."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from .helpers import compare_with_torch, make_layout

LAYOUTS = ["contiguous", "channels_last", "strided", "expanded"]


@st.composite
def geometries(draw, max_channels=3):
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, max_channels))
    kg = draw(st.integers(1, max_channels))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "same":
        stride, padding = (1, 1), "same"
    elif kind == "valid":
        padding = "valid"
    elif kind == "int":
        padding = draw(st.integers(0, 3))
    else:
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    pads = (
        (0, 0)
        if isinstance(padding, str)
        else ((padding, padding) if isinstance(padding, int) else padding)
    )
    # Smallest input the dilated kernel fits in, plus a random margin.
    h = max(1, dil[0] * (r - 1) + 1 - 2 * pads[0]) + draw(st.integers(0, 9))
    w = max(1, dil[1] * (s - 1) + 1 - 2 * pads[1]) + draw(st.integers(0, 9))
    return dict(
        n=draw(st.integers(0, 3)),
        c=groups * cg,
        k=groups * kg,
        h=h,
        w=w,
        r=r,
        s=s,
        stride=stride if draw(st.booleans()) else stride[0] if stride[0] == stride[1] else stride,
        padding=padding,
        dilation=dil,
        groups=groups,
        bias=draw(st.booleans()),
        unbatched=draw(st.integers(0, 4)) == 0,
        layout=draw(st.sampled_from(LAYOUTS)),
    )


def build(geo, dtype=torch.float64):
    n = max(geo["n"], 1) if geo["unbatched"] else geo["n"]
    x = torch.randn(n, geo["c"], geo["h"], geo["w"], dtype=dtype)
    if geo["layout"] == "expanded":
        x = x[:1].expand_as(x).clone()  # equal images, so the expanded view is valid
    x = make_layout(x, geo["layout"])
    if geo["unbatched"]:
        x = x[0]
    w = torch.randn(geo["k"], geo["c"] // geo["groups"], geo["r"], geo["s"], dtype=dtype)
    w = make_layout(w, geo["layout"] if geo["layout"] != "expanded" else "contiguous")
    b = torch.randn(geo["k"], dtype=dtype) if geo["bias"] else None
    return x, w, b


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


@pytest.mark.parametrize(
    "shape, padding, dilation",
    [((2, 1, 300, 70), 1, 1), ((1, 3, 97, 130), 0, 2), ((2, 5, 64, 33), 3, 1)],
    ids=["same", "valid-dilated", "wider"],
)
def test_fused_one_to_one_backward_equals_separate_passes(shape, padding, dilation):
    # Both gradients of a one-to-one stride-1 layer come from one fused pass over row
    # chunks (conv2d.cpp, direct_backward_fused). It must give exactly what the separate
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
    # in place; only the edges are staged (csrc/cpu/direct.h, StagedRows::in_place). Rows
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
    # into the output (csrc/cpu/direct.h, kernel_row_band); grad-weight sums each band's
    # rows into its own rows of the weight gradient.
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    with fastconv.cpu_algorithm("direct"):  # not the FFT, whatever its cost model says
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
    with fastconv.cpu_algorithm("direct"):
        compare_with_torch(x, w, b, geo["stride"], geo["padding"], geo["dilation"], c)
