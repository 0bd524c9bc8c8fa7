"""The dense family (csrc/cpu/dense/): forced with fastconv.cpu_algorithm("dense"), forward and
all gradients match torch in float64 over fuzzed geometries in both layouts -- NCHW on the
packed im2col tiles, channels_last on the kernels that gather every tap's channel run in
place (dense/nhwc.h) -- and channels_last passes make no layout copy."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import (
    LAYOUT_COPIES,
    assert_channels_last_passes_copy_nothing,
    build,
    compare_with_torch,
    family,
    geometries,
    nchw_passes_copied,
    on_one_and_many_threads,
)

CL = torch.channels_last


@given(geometries(max_channels=8), st.sampled_from(["contiguous", "channels_last"]))
def test_dense_forced_matches_torch_float64(geo, layout):
    geo = dict(geo, layout=layout)
    x, w, b = build(geo)
    with fastconv.cpu_algorithm("dense"):
        compare_with_torch(x, w, b, geo["stride"], geo["padding"], geo["dilation"], geo["groups"])


# (N, C, H, W, K, R, S, stride, padding, dilation, groups): channel counts around the panel
# widths (up to 64 floats, 32 doubles on AVX-512) and last panels of 1, 2 and 3 vectors
# (96 and 112 channels in float32), strides that leave column phases without taps; grouped
# stride-1 layers take their grad-input as the forward on the flipped weight (24 and 40
# channels per group, dilated, a 1x7 kernel); a batch-1 1x1 grad-input 600 deep copies its
# weight's rows slice by slice (NhwcWeight::kRawColumns: three slices, a ragged last panel);
# the grad-weight copies each panel's rows together where x's rows are 2 KB apart or more
# (520 and 528 channels: a ragged last panel, padding's zero rows, two chunks of positions,
# two groups); with grad_output's rows as long or longer, and few positions, the grad-weight
# tasks take blocks of output channels and every panel, copying grad_output's rows (520 and
# 528 outputs: blocks that end mid-tile, three and two panels, groups).
NHWC_LAYERS = [
    (2, 72, 7, 7, 72, 3, 3, 1, 1, 1, 3),
    (1, 80, 9, 8, 80, 1, 7, 1, (0, 3), 1, 2),
    (2, 48, 10, 10, 48, 3, 3, 1, 2, 2, 2),
    (2, 96, 7, 7, 112, 3, 3, 1, 1, 1, 1),
    (2, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1),
    (1, 48, 9, 11, 40, 1, 1, 1, 0, 1, 1),
    (2, 16, 15, 13, 70, 3, 3, 2, 1, 1, 1),
    (1, 3, 30, 30, 17, 7, 7, 2, 3, 1, 1),
    (1, 24, 10, 10, 36, 3, 3, 1, 2, 2, 2),
    (2, 8, 9, 9, 8, 1, 1, 3, 0, 1, 1),
    (1, 33, 8, 8, 33, 5, 3, (2, 3), (2, 1), (1, 2), 1),
    (3, 128, 4, 4, 256, 1, 1, 2, 0, 1, 1),
    (1, 100, 7, 7, 600, 1, 1, 1, 0, 1, 1),
    (2, 520, 9, 9, 24, 3, 3, 1, 1, 1, 1),
    (1, 528, 12, 12, 48, 1, 1, 1, 0, 1, 2),
    (2, 136, 6, 6, 520, 1, 1, 1, 0, 1, 1),
    (1, 160, 5, 5, 528, 3, 3, 1, 1, 1, 2),
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


# Few positions and four or more output-channel panels (dense/driver.cpp, forward_nhwc):
# the forward packs each slice of the weight in its tasks instead of packing the whole
# weight first: of a channels_last (or 1x1) weight [tap][c] rows, of a contiguous one
# [c][tap] rows in slices of every tap and a few channels. Partial last panels, slices of
# one tap's channels (C/G > 256), groups, strides and dilation, a shallow 1x1 (every panel
# per micro-tile), kernel-row taps (3 channels), two blocks of positions, 1x1 and 3x3 NCHW
# weights (300 channels: eleven slices of 28), and a 1x1 with too few panels for two
# threads (its positions split into more blocks).
RAW_ROWS_LAYERS = [
    (1, 576, 7, 7, 160, 1, 1, 1, 0, 1, 1, True),
    (1, 40, 7, 7, 200, 3, 3, 1, 1, 1, 1, True),
    (1, 300, 5, 6, 160, 3, 3, 1, 1, 1, 1, True),
    (2, 64, 9, 9, 256, 3, 3, 2, 1, 1, 2, True),
    (1, 8, 10, 10, 256, 1, 1, 1, 0, 1, 1, True),
    (1, 3, 16, 16, 256, 7, 7, 2, 3, 1, 1, True),
    (3, 64, 12, 12, 128, 3, 3, 1, 2, 2, 1, True),
    (1, 96, 7, 7, 192, 1, 1, 1, 0, 1, 1, False),
    (1, 40, 7, 7, 200, 3, 3, 1, 1, 1, 1, False),
    (1, 300, 5, 6, 160, 3, 3, 1, 1, 1, 1, False),
    (2, 64, 9, 9, 256, 3, 3, 2, 1, 1, 2, False),
    (3, 64, 12, 12, 128, 3, 3, 1, 2, 2, 1, False),
    (1, 48, 9, 9, 256, 1, 7, 1, (0, 3), 1, 1, False),
]


@pytest.mark.parametrize("layer", RAW_ROWS_LAYERS, ids=lambda layer: "x".join(map(str, layer[:7])))
def test_channels_last_forward_packing_in_tasks(layer):
    n, c, h, w_, k, r, s, stride, padding, dilation, groups, weight_cl = layer
    x = torch.randn(n, c, h, w_, dtype=torch.float64).contiguous(memory_format=CL)
    w = torch.randn(k, c // groups, r, s, dtype=torch.float64)
    w = w.contiguous(memory_format=CL) if weight_cl else w
    b = torch.randn(k, dtype=torch.float64)
    args = (stride, padding, dilation, groups)
    with fastconv.cpu_algorithm("dense"):
        assert family(x, w, *args) == "dense"
        compare_with_torch(x, w, b, *args, grads=False)
        # float32: the same bits on one thread and on several (blocks and tasks differ)
        x32, w32, b32 = x.float(), w.float(), b.float()
        one, many = on_one_and_many_threads(lambda: fastconv.conv2d(x32, w32, b32, *args))
        assert torch.equal(one, many)
        torch.testing.assert_close(one.double(), F.conv2d(x, w, b, *args), rtol=1e-4, atol=1e-4)


# 1x1 layers that read x in place (stride 1 without padding, or a 1x1 map): the forward and
# the grad-input are plain GEMMs on the rows of x and grad_output; the grad-input runs on the
# forward's tasks with the grad-input's panels (lanes over C/G, any K/G, with groups).
@given(
    st.integers(1, 3),
    st.integers(16, 70),
    st.integers(1, 70),
    st.sampled_from([1, 1, 2, 3]),
    st.integers(1, 9),
    st.integers(1, 9),
    st.booleans(),
    st.sampled_from([1, 1, 2]),
)
def test_channels_last_pointwise_matches_torch_float64(n, cg, kg, groups, h, w_, weight_cl, stride):
    if stride > 1:  # strided only where the map is 1x1, so the layer still reads x in place
        h = w_ = 1
    x = torch.randn(n, cg * groups, h, w_, dtype=torch.float64).contiguous(memory_format=CL)
    w = torch.randn(kg * groups, cg, 1, 1, dtype=torch.float64)
    if weight_cl:
        w = w.contiguous(memory_format=CL)
    with fastconv.cpu_algorithm("dense"):
        assert family(x, w, stride, 0, 1, groups, "grad_input") == "dense"
        b = torch.randn(kg * groups, dtype=torch.float64)
        compare_with_torch(x, w, b, stride, 0, 1, groups)


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_passes_make_no_layout_copy(stride):
    x = torch.randn(2, 32, 12, 12)
    w = torch.randn(48, 32, 3, 3)
    with fastconv.cpu_algorithm("dense"):
        assert family(x.contiguous(memory_format=CL), w, stride, 1) == "dense"
        assert_channels_last_passes_copy_nothing(x, w, torch.randn(48), stride, 1, 1, 1)


# NCHW callers' dense passes run on the channels_last kernels, through layout copies in and
# out, where the layer's multiply-adds per copied activation reach select.cpp's
# kNhwcForNchwMinIntensity (128), and grouped layers' where the batch has at most
# kGroupedNhwcForNchwMaxPositions (512) output positions (grad passes at stride 1 only); a
# 1x1 layer's forward stays NCHW but on maps below kNchwPointwiseMinPlane (64) positions in a
# batch, and its stride-1 grad passes on maps of kNchwPointwiseGradMinPlane (256) positions
# and more. (N, C, H, K, R, stride, groups): which passes copy, and the results stay NCHW and
# match torch in float64.
NCHW_PROMOTED = [
    ((1, 64, 8, 64, 3, 1, 1), {"forward", "grad_input", "grad_weight"}),  # 288 per value
    ((1, 16, 12, 16, 3, 1, 1), set()),  # 72 per value
    ((1, 256, 6, 256, 1, 1, 1), {"grad_input", "grad_weight"}),  # 128 per value
    ((1, 256, 15, 256, 1, 1, 1), {"grad_input", "grad_weight"}),  # ... on a 15^2 map
    ((1, 256, 16, 256, 1, 1, 1), set()),  # ... on a 16^2 map: plain GEMMs in NCHW
    ((2, 48, 7, 48, 3, 1, 2), {"forward", "grad_input", "grad_weight"}),  # 98 positions
    ((2, 48, 8, 48, 3, 2, 2), {"forward"}),  # strided: 32 positions
    ((3, 48, 14, 48, 3, 1, 2), set()),  # 588 positions, 108 per value
    ((2, 64, 7, 32, 1, 1, 1), {"forward"}),  # 1x1 on 7^2 maps in a batch
    ((1, 64, 7, 32, 1, 1, 1), set()),  # ... of one image
    ((2, 64, 8, 32, 1, 1, 1), set()),  # ... on 8^2 maps
]


@pytest.mark.parametrize("layer, promoted", NCHW_PROMOTED, ids=lambda v: str(v))
def test_nchw_callers_run_deep_dense_passes_on_channels_last_kernels(layer, promoted):
    n, c, h, k, r, stride, groups = layer
    x = torch.randn(n, c, h, h, dtype=torch.float64)
    w = torch.randn(k, c // groups, r, r, dtype=torch.float64)
    p = (h + 2 * (r // 2) - r) // stride + 1
    gy = torch.randn(n, k, p, p, dtype=torch.float64)
    args = ([stride] * 2, [r // 2] * 2, [1, 1], groups)
    # Forced: float64 groups of 24 are three AVX-512 vectors, which auto runs on the grouped
    # family; the promotion under test is the dense passes'.
    with fastconv.cpu_algorithm("dense"):
        copied = nchw_passes_copied(x, w, gy, *args, "dense")
        compare_with_torch(x, w, torch.randn(k, dtype=torch.float64), *args)
    assert copied == promoted


# Few-channel ungrouped layers (3-channel first layers) on channels_last gather whole kernel
# rows (dense/table.h's nhwc_taps): R runs of S*C values per position, staged with zeros where
# a row crosses the width's edges; their grad-weight sums fixed slices of the positions.
# Grad-weight also takes them for more channels where a row's run is short (S*C <= 48,
# K >= C: dense/table.h's nhwc_wgrad_taps), so C goes past the forward's limit of 8.
@st.composite
def kernel_row_geometries(draw):
    r, s = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.sampled_from([1, 1, 1, 2])))
    h = max(1, dilation[0] * (r - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, 12))
    w = max(1, dilation[1] * (s - 1) + 1 - 2 * padding[1]) + draw(st.integers(0, 12))
    return dict(
        n=draw(st.integers(1, 3)),
        c=draw(st.integers(1, 20)),
        k=draw(st.sampled_from([16, 17, 24, 32, 40])),
        h=h,
        w=w,
        r=r,
        s=s,
        stride=stride,
        padding=padding,
        dilation=dilation,
        weight_cl=draw(st.booleans()),
        bias=draw(st.booleans()),
    )


@given(kernel_row_geometries())
def test_channels_last_kernel_row_taps_match_torch_float64(geo):
    x = torch.randn(geo["n"], geo["c"], geo["h"], geo["w"], dtype=torch.float64)
    w = torch.randn(geo["k"], geo["c"], geo["r"], geo["s"], dtype=torch.float64)
    w = w.contiguous(memory_format=CL) if geo["weight_cl"] else w
    b = torch.randn(geo["k"], dtype=torch.float64) if geo["bias"] else None
    args = (geo["stride"], geo["padding"], geo["dilation"], 1)
    with fastconv.cpu_algorithm("dense"):  # one input channel would run on the row kernels
        assert family(x.contiguous(memory_format=CL), w, *args) == "dense"
        compare_with_torch(x.contiguous(memory_format=CL), w, b, *args)


STEMS = [  # (C, H, K, R, stride, padding): torchvision's first layers, at reduced size
    (3, 45, 32, 7, 2, 3),
    (3, 33, 16, 3, 2, 1),
    (3, 32, 24, 4, 4, 0),
    (3, 29, 32, 3, 2, 0),
    (4, 20, 20, 3, 1, 1),
    (16, 20, 48, 1, 1, 0),  # and layers whose grad-weight alone takes kernel rows
    (16, 21, 16, 3, 2, 1),
]


@pytest.mark.parametrize("stem", STEMS, ids=lambda s: "c{}_h{}_k{}_r{}_s{}_p{}".format(*s))
def test_kernel_row_forward_and_grad_weight_make_no_layout_copy(stem):
    """A first layer's input needs no gradient: its forward and grad-weight (and those of the
    other kernel-row grad-weights) read and write channels_last tensors in place, and match
    torch in float64."""
    c, size, k, r, stride, padding = stem
    x = torch.randn(2, c, size, size, dtype=torch.float64).contiguous(memory_format=CL)
    w = torch.randn(k, c, r, r, dtype=torch.float64).contiguous(memory_format=CL)
    b = torch.randn(k, dtype=torch.float64)
    args = ([stride] * 2, [padding] * 2, [1, 1], 1)
    y_ref = F.conv2d(x, w, b, *args[:3])
    gy = torch.randn_like(y_ref).contiguous(memory_format=CL)
    with torch.profiler.profile() as prof:
        y = torch.ops.fastconv.conv2d(x, w, b, *args)
        _, gw, gb = torch.ops.fastconv.conv2d_backward(gy, x, w, *args, [False, True, True])
    copies = [e.name for e in prof.events() if e.name in LAYOUT_COPIES]
    assert copies == [], copies
    assert y.is_contiguous(memory_format=CL) and gw.is_contiguous(memory_format=CL)
    _, gw_ref, gb_ref = torch.ops.aten.convolution_backward(
        gy, x, w, [k], *args[:3], False, [0, 0], 1, [False, True, True]
    )
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(gw, gw_ref)
    torch.testing.assert_close(gb, gb_ref)


def test_kernel_row_grad_weight_does_not_depend_on_threads():
    """The grad-weight's slices of the positions are fixed by the problem, so the float32
    sum comes out bit for bit the same on one thread and on several."""
    x = torch.randn(2, 3, 96, 96).contiguous(memory_format=CL)
    w = torch.randn(32, 3, 3, 3).contiguous(memory_format=CL)
    gy = torch.randn(2, 32, 48, 48).contiguous(memory_format=CL)
    args = ([2, 2], [1, 1], [1, 1], 1, [False, True, False])
    one, many = on_one_and_many_threads(
        lambda: torch.ops.fastconv.conv2d_backward(gy, x, w, *args)[1]
    )
    assert torch.equal(one, many)
    want = torch.ops.aten.convolution_backward(
        gy.double(), x.double(), w.double(), None, *args[:3], False, [0, 0], 1, args[4]
    )[1]
    torch.testing.assert_close(one.double(), want, rtol=1e-4, atol=1e-3)


# The tap-by-tap channels_last grad-weight over many positions runs in fixed slices of them
# (runtime/parallel.h's reduction_slices), each task over every input-channel panel, the
# partial weights added in slice order: several slices, groups, a partial last panel,
# strided and padded taps, an in-place 1x1 layer; with fewer slices than the threads want
# and more input than output channels, tasks over parts of the panels (136 -> 40: five
# float64 panels in four parts). (N, C, H, W, K, R, S, stride, padding, dilation, groups)
SLICED_WGRAD_LAYERS = [
    (2, 40, 48, 48, 24, 1, 1, 1, 0, 1, 1),
    (1, 136, 70, 70, 40, 1, 1, 1, 0, 1, 1),
    (1, 32, 70, 70, 20, 3, 3, 1, 1, 1, 2),
    (4, 36, 64, 64, 18, 3, 3, 2, 1, 1, 1),
]


def _grad_weight(gy, x, w, stride, padding, dilation, groups):
    args = ([stride] * 2, [padding] * 2, [dilation] * 2, groups, [False, True, False])
    return torch.ops.fastconv.conv2d_backward(gy, x, w, *args)[1]


@pytest.mark.parametrize(
    "layer", SLICED_WGRAD_LAYERS, ids=lambda layer: "x".join(map(str, layer[:7]))
)
def test_sliced_channels_last_grad_weight(layer):
    n, c, h, w_, k, r, s, stride, padding, dilation, groups = layer
    x = torch.randn(n, c, h, w_, dtype=torch.float64).contiguous(memory_format=CL)
    w = torch.randn(k, c // groups, r, s, dtype=torch.float64).contiguous(memory_format=CL)
    gy = torch.randn_like(F.conv2d(x, w, None, stride, padding, dilation, groups))
    assert gy.shape[0] * gy.shape[2] * gy.shape[3] >= 2 * 2048  # two slices at least
    with fastconv.cpu_algorithm("dense"):
        assert family(x, w, stride, padding, dilation, groups, "grad_weight") == "dense"
        got = _grad_weight(gy, x, w, stride, padding, dilation, groups)
        want = torch.ops.aten.convolution_backward(
            gy,
            x,
            w,
            None,
            [stride] * 2,
            [padding] * 2,
            [dilation] * 2,
            False,
            [0, 0],
            groups,
            [False, True, False],
        )[1]
        torch.testing.assert_close(got, want)
        assert got.is_contiguous(memory_format=CL)
        # float32: the same bits on one thread and on several
        x32, w32, gy32 = x.float(), w.float(), gy.float()
        one, many = on_one_and_many_threads(
            lambda: _grad_weight(gy32, x32, w32, stride, padding, dilation, groups)
        )
        assert torch.equal(one, many)


# The NCHW grad-weight's tiles of even sizes and its slices of the batch (a divisor of N):
# 200 rows of the weight in two tiles of 102 and 98, 160 output channels in 64 and 96, 8
# images in 2 slices; a 3x3 layer's 144 rows in two. Below the channels_last promotion's
# intensity, so the NCHW kernel runs. (N, C, H, K, R)
NCHW_WGRAD_LAYERS = [(8, 200, 14, 160, 1), (8, 16, 12, 24, 3)]


@pytest.mark.parametrize("layer", NCHW_WGRAD_LAYERS, ids=lambda layer: "x".join(map(str, layer)))
def test_nchw_grad_weight_tiles_match_torch_and_do_not_depend_on_threads(layer):
    n, c, h, k, r = layer
    with fastconv.cpu_algorithm("dense"):  # a 3x3 layer would run Winograd
        x = torch.randn(n, c, h, h, dtype=torch.float64)
        w = torch.randn(k, c, r, r, dtype=torch.float64)
        gy = torch.randn(n, k, h, h, dtype=torch.float64)
        assert family(x, w, 1, r // 2, 1, 1, "grad_weight") == "dense"
        with torch.profiler.profile() as prof:
            got = _grad_weight(gy, x, w, 1, r // 2, 1, 1)
        assert not any(e.name == "fastconv::layout_copy" for e in prof.events())
        want = torch.ops.aten.convolution_backward(
            gy, x, w, None, [1, 1], [r // 2] * 2, [1, 1], False, [0, 0], 1, [False, True, False]
        )[1]
        torch.testing.assert_close(got, want)
        x32, w32, gy32 = x.float(), w.float(), gy.float()
        one, many = on_one_and_many_threads(lambda: _grad_weight(gy32, x32, w32, 1, r // 2, 1, 1))
        assert torch.equal(one, many)


# The NCHW forward's tiles (dense/tiling.h): a 28^2 map in tiles of whole panels of about
# one size; a 24^2 map's three tiles made four, and a 14^2 map's seven single-panel tiles
# shared through a split of the output channels (1x1 and 3x3); 3 images of 20^2 in groups;
# 400 output channels, which the GEMM runs in three blocks of rows (138, 138, 124).
# Shallow enough that no pass is promoted to the channels_last kernels. (N, C, H, K, R, G)
NCHW_FORWARD_TILES = [
    (1, 64, 28, 128, 1, 1),
    (1, 16, 24, 70, 1, 1),
    (1, 32, 14, 144, 1, 1),
    (1, 8, 14, 130, 3, 1),
    (3, 8, 20, 64, 1, 2),
    (1, 16, 14, 400, 1, 1),
]


@pytest.mark.parametrize("layer", NCHW_FORWARD_TILES, ids=lambda layer: "x".join(map(str, layer)))
def test_nchw_forward_tiles_match_torch_and_do_not_depend_on_threads(layer):
    n, c, h, k, r, groups = layer
    with fastconv.cpu_algorithm("dense"):  # a 3x3 layer would run Winograd
        x = torch.randn(n, c, h, h, dtype=torch.float64)
        w = torch.randn(k, c // groups, r, r, dtype=torch.float64)
        b = torch.randn(k, dtype=torch.float64)
        with torch.profiler.profile() as prof:
            got = fastconv.conv2d(x, w, b, 1, r // 2, 1, groups)
        assert not any(e.name == "fastconv::layout_copy" for e in prof.events())
        want = F.conv2d(x, w, b, 1, r // 2, 1, groups)
        torch.testing.assert_close(got, want)
        # float32 tiles are twice as wide (other splits): checked too, on one thread and many
        x32, w32, b32 = x.float(), w.float(), b.float()
        one, many = on_one_and_many_threads(
            lambda: fastconv.conv2d(x32, w32, b32, 1, r // 2, 1, groups)
        )
        torch.testing.assert_close(many, want.float(), rtol=1e-4, atol=1e-4)
        assert torch.equal(one, many)


# A strided 1x1 layer's grad-input: the stride-1 forward on the transposed weight (NCHW) or
# the stride-1 GEMM flat over the positions (channels_last), spread over the strided grid
# (maps that the stride does not divide, unequal strides, groups), with no layout copy even
# where the channels_last kernels would pay for theirs in the other passes (the last
# layer). (N, C, H, W, K, stride, groups)
STRIDED_POINTWISE = [
    (2, 24, 9, 7, 40, 2, 1),
    (1, 16, 8, 11, 12, (3, 2), 2),
    (3, 64, 14, 14, 128, 2, 1),
    (1, 512, 10, 10, 1024, 2, 1),
]


def _pair(v):
    return list(v) if isinstance(v, tuple) else [v, v]


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("layer", STRIDED_POINTWISE, ids=lambda layer: "x".join(map(str, layer)))
def test_strided_pointwise_grad_input_matches_torch_float64(layer, layout):
    n, c, h, w_, k, stride, groups = layer
    x = torch.randn(n, c, h, w_, dtype=torch.float64).contiguous(memory_format=layout)
    w = torch.randn(k, c // groups, 1, 1, dtype=torch.float64).contiguous(memory_format=layout)
    assert family(x, w, stride, 0, 1, groups, "grad_input") == "dense"
    compare_with_torch(x, w, None, stride, 0, 1, groups)
    y = F.conv2d(x, w, None, stride, 0, 1, groups)
    gy = torch.randn_like(y)
    args = (_pair(stride), [0, 0], [1, 1], groups, [True, False, False])
    with torch.profiler.profile() as prof:
        gx = torch.ops.fastconv.conv2d_backward(gy, x, w, *args)[0]
    # (Channels_last groups of under 16 channels run NCHW kernels through copies.)
    if layout == torch.contiguous_format or c // groups >= 16:
        assert not any(e.name == "fastconv::layout_copy" for e in prof.events())
    assert gx.is_contiguous(memory_format=layout)
    want = torch.ops.aten.convolution_backward(gy, x, w, None, *args[:3], False, [0, 0], *args[3:])
    torch.testing.assert_close(gx, want[0])
