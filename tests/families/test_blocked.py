"""The channel-blocked depthwise kernels (csrc/cpu/blocked/): forced with
fastconv.cpu_algorithm("blocked"), forward and both gradients match torch in float64 over
fuzzed geometries (any stride, dilation, padding, channel counts that leave a partial
block), gradients are bitwise reproducible across thread counts, and auto picks them for
depthwise layers with a vector's worth of channels."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv

from ..helpers import (
    assert_channels_last_passes_copy_nothing,
    compare_with_torch,
    family,
    grouped_fits,
    make_layout,
    on_one_and_many_threads,
    vector_lanes,
)


@pytest.fixture
def blocked():
    with fastconv.cpu_algorithm("blocked"):
        yield


@st.composite
def depthwise_geometries(draw):
    """groups == in == out channels; channel counts around the block sizes (8 doubles, 16
    floats on AVX-512) so partial blocks and several blocks both occur."""
    n = draw(st.integers(1, 3))
    c = draw(st.sampled_from([1, 2, 7, 8, 9, 15, 16, 17, 31, 33]))
    r, s = draw(st.integers(1, 7)), draw(st.integers(1, 9))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    h = max(1, dh * (r - 1) + 1 - 2 * ph) + draw(st.integers(0, 20))
    w = max(1, dw * (s - 1) + 1 - 2 * pw) + draw(st.integers(0, 40))
    return n, c, h, w, r, s, (sh, sw), (ph, pw), (dh, dw), draw(st.booleans())


@given(
    depthwise_geometries(),
    st.sampled_from([torch.float64, torch.float32]),
    st.sampled_from([torch.contiguous_format, torch.channels_last]),
)
def test_blocked_path_matches_torch(geo, dtype, fmt):
    """Both layouts: channels_last blocks are staged and written back in place."""
    n, c, h, w, r, s, stride, padding, dilation, bias = geo
    x = torch.randn(n, c, h, w, dtype=dtype).contiguous(memory_format=fmt)
    wt = torch.randn(c, 1, r, s, dtype=dtype)
    b = torch.randn(c, dtype=dtype) if bias else None
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    with fastconv.cpu_algorithm("blocked"):
        assert family(x, wt, stride, padding, dilation, c) == "blocked"
        compare_with_torch(x, wt, b, stride, padding, dilation, c, **tol)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_blocked_path_other_layouts(blocked, layout):
    x = make_layout(torch.randn(2, 20, 13, 11, dtype=torch.float64), layout)
    w = make_layout(torch.randn(20, 1, 3, 5, dtype=torch.float64), layout)
    compare_with_torch(x, w, torch.randn(20, dtype=torch.float64), 2, (1, 2), 1, 20)


def test_blocked_path_gradcheck_and_gradgradcheck(blocked):
    x = torch.randn(2, 9, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, 1, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return fastconv.conv2d(x, w, b, (2, 1), (1, 1), (1, 2), 9)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize(
    "stride, shape, fmt",
    [
        (1, (5, 40, 19, 23), torch.contiguous_format),
        (2, (5, 40, 19, 23), torch.contiguous_format),
        # 8 MB and more in channels_last: the grad-weight's bands (stride 1) or in-place
        # rows (stride 2) sum into fixed slabs
        (1, (3, 40, 130, 140), torch.channels_last),
        (2, (3, 40, 130, 140), torch.channels_last),
        # in place below 8 MB (strided)
        (2, (2, 40, 30, 60), torch.channels_last),
    ],
)
def test_blocked_grads_bitwise_equal_across_thread_counts(blocked, stride, shape, fmt):
    x = torch.randn(*shape).contiguous(memory_format=fmt)
    w = torch.randn(40, 1, 5, 5)
    gy = torch.randn_like(fastconv.conv2d(x, w, None, stride, 2, 1, 40))
    op = torch.ops.fastconv.conv2d_backward
    previous = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(op(gy, x, w, [stride] * 2, [2, 2], [1, 1], 40, [True, True, True]))
    finally:
        torch.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_auto_picks_blocked_for_depthwise_layers_only():
    def algo(c, m=1, h=56, k=3, groups=None, dtype=torch.float32):
        groups = c if groups is None else groups
        x = torch.empty(1, c, h, h, dtype=dtype)
        return family(x, torch.empty(c * m, c // groups, k, k, dtype=dtype), 1, k // 2, 1, groups)

    v = vector_lanes()
    assert algo(v) == "blocked"
    assert algo(384, h=14) == "blocked"
    assert algo(v, h=112) == "blocked"
    assert algo(v - 1) == "rows"  # under a vector of channels: lanes would idle
    assert algo(3) == "rows"  # RGB per-channel filtering
    assert algo(32, m=2) == "rows"  # channel multiplier 2: row kernels
    assert algo(32, groups=1) == "winograd"  # dense layers: other families
    # 24 channels per group: three AVX2 vectors a group (the grouped family), else no
    # vector of groups
    assert algo(48, groups=2) == ("grouped" if grouped_fits(24) else "dense")
    assert algo(40, groups=2) == "dense"  # 20 per group: no kernel of that width
    with fastconv.cpu_algorithm("plain"):
        assert algo(384, h=14) == "rows"
    with fastconv.cpu_algorithm("blocked"):
        assert algo(3) == "blocked"
        assert algo(32, m=2) == "rows"  # forcing never applies where it cannot
        assert algo(32, groups=1) == "winograd"  # dense layers: other families
    assert algo(40, groups=2) == "dense"


def test_blocked_and_row_kernels_agree():
    x = torch.randn(3, 48, 14, 14)
    w = torch.randn(48, 1, 5, 5)
    b = torch.randn(48)
    with fastconv.cpu_algorithm("blocked"):
        via_blocked = fastconv.conv2d(x, w, b, 2, 2, 1, 48)
    with fastconv.cpu_algorithm("rows"):
        via_rows = fastconv.conv2d(x, w, b, 2, 2, 1, 48)
    torch.testing.assert_close(via_blocked, via_rows, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_passes_make_no_layout_copy(stride):
    """The blocked kernels stage channel-innermost blocks, so channels_last activations are
    read and written in place, every pass."""
    x = torch.randn(2, 32, 15, 13)
    w = torch.randn(32, 1, 3, 3)
    assert family(x.contiguous(memory_format=torch.channels_last), w, stride, 1, 1, 32) == "blocked"
    assert_channels_last_passes_copy_nothing(x, w, torch.randn(32), stride, 1, 1, 32)


# Channels_last inputs of 8 MB and more (blocked/driver.cpp's kNhwcBandMinBytes) run in
# bands of output rows that stage every block of channels at once: (N, C, H, W, kernel,
# stride, padding, dilation), float64, channel counts that leave a partial last block.
BANDED = [
    (2, 40, 112, 120, 3, 1, 1, 1),
    (1, 96, 112, 112, 3, 2, 1, 1),
    (1, 33, 181, 181, (5, 3), (2, 1), (3, 0), 1),
    (1, 17, 256, 250, 3, 1, 2, 2),
]


@pytest.mark.parametrize("layer", BANDED, ids=lambda layer: "x".join(map(str, layer[:4])))
def test_large_channels_last_inputs_match_torch_float64(layer):
    n, c, h, w, kernel, stride, padding, dilation = layer
    x = torch.randn(n, c, h, w, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert x.numel() * x.element_size() >= 8 << 20
    r, s = (kernel, kernel) if isinstance(kernel, int) else kernel
    wt = torch.randn(c, 1, r, s, dtype=torch.float64)
    with fastconv.cpu_algorithm("blocked"):
        assert family(x, wt, stride, padding, dilation, c) == "blocked"
        compare_with_torch(x, wt, torch.randn(c, dtype=torch.float64), stride, padding, dilation, c)


# Smaller channels_last inputs at stride 1 run in bands too where there are four per thread
# (blocked/driver.cpp's nhwc_forward_band_rows), else a block per task: (N, C, H, kernel).
# The second layer takes bands on one thread and blocks on two; the bits are the same.
SMALL_BANDED = [(2, 40, 40, 3), (1, 32, 24, 3), (8, 48, 7, 3), (2, 24, 48, 5)]


@pytest.mark.parametrize("layer", SMALL_BANDED, ids=lambda layer: "x".join(map(str, layer)))
def test_small_stride_one_channels_last_inputs_in_bands(layer):
    n, c, h, k = layer
    x = torch.randn(n, c, h, h, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    wt = torch.randn(c, 1, k, k, dtype=torch.float64)
    b = torch.randn(c, dtype=torch.float64)
    with fastconv.cpu_algorithm("blocked"):
        assert family(x, wt, 1, k // 2, 1, c) == "blocked"
        compare_with_torch(x, wt, b, 1, k // 2, 1, c, grads=False)
        x32, w32, b32 = x.float(), wt.float(), b.float()
        one, many = on_one_and_many_threads(lambda: fastconv.conv2d(x32, w32, b32, 1, k // 2, 1, c))
        assert torch.equal(one, many)
        torch.testing.assert_close(
            one.double(), F.conv2d(x, wt, b, 1, k // 2, 1, c), rtol=1e-4, atol=1e-4
        )


# Batch 8 at stride 1 takes bands (on one thread and on two) where the halo is small, else a
# block per task: kernel sizes, paddings and dilations that put either path at the borders,
# and channel counts with a partial last block.
@given(
    c=st.integers(16, 40),
    h=st.integers(6, 20),
    w=st.integers(6, 20),
    r=st.integers(1, 5),
    s=st.integers(1, 5),
    pad=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
)
def test_bands_in_place_match_torch_float64(c, h, w, r, s, pad, dil):
    x = torch.randn(8, c, h, w, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    wt = torch.randn(c, 1, r, s, dtype=torch.float64)
    b = torch.randn(c, dtype=torch.float64)
    assume(h + 2 * pad[0] >= dil[0] * (r - 1) + 1 and w + 2 * pad[1] >= dil[1] * (s - 1) + 1)
    with fastconv.cpu_algorithm("blocked"):
        compare_with_torch(x, wt, b, 1, pad, dil, c, grads=False)


def reads_in_place(stride, pad_w, s, w, numel_bytes):
    """Whether a channels_last depthwise forward reads x in place (blocked/driver.cpp's
    nhwc_in_place), stated independently: dilation 1, stride along the width at
    most 2, at most a fifth of the output columns at an edge (a tap in the padding), and
    strided, or 3x3 at most on an input of 8 MB or more."""
    sh, sw = stride
    q = (w + 2 * pad_w - s) // sw + 1
    interior = sum(1 for c in range(q) if c * sw - pad_w >= 0 and c * sw - pad_w + s <= w)
    if sw > 2 or 5 * (q - interior) > q:
        return False
    return (sh, sw) != (1, 1) or numel_bytes >= 8 << 20


# Strided channels_last layers on maps wide enough that the in-place forward and
# grad-input run: every stride along the height, 1 or 2 along the width, kernels to 5x5 with
# any padding (phases without taps included), channel counts that leave a partial (masked)
# last block, both dtypes, with and without bias.
@given(
    n=st.integers(1, 3),
    c=st.sampled_from([8, 16, 24, 40, 48, 72]),
    h=st.integers(5, 30),
    w=st.integers(24, 70),
    r=st.integers(1, 5),
    s=st.integers(1, 5),
    stride=st.sampled_from([(2, 2), (1, 2), (3, 2), (2, 1)]),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    bias=st.booleans(),
)
def test_in_place_channels_last_passes_match_torch(n, c, h, w, r, s, stride, pad, dtype, bias):
    assume(h + 2 * pad[0] >= r)
    x = torch.randn(n, c, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)
    assume(reads_in_place(stride, pad[1], s, w, x.numel() * x.element_size()))
    wt = torch.randn(c, 1, r, s, dtype=dtype)
    b = torch.randn(c, dtype=dtype) if bias else None
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    with fastconv.cpu_algorithm("blocked"):
        assert family(x, wt, stride, pad, 1, c) == "blocked"
        y = fastconv.conv2d(x, wt, b, stride, pad, 1, c)
        assert y.is_contiguous(memory_format=torch.channels_last)
        compare_with_torch(x, wt, b, stride, pad, 1, c, **tol)
