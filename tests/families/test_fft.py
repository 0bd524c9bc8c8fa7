"""The fft family (csrc/cpu/fft/) and the cost model
that picks it: forced with fastconv.cpu_algorithm("fft"), every pass matches torch in
float64 over fuzzed geometries; float32 stays within the documented error bound."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastconv

from ..helpers import compare_with_torch, family


@pytest.fixture
def fft():
    with fastconv.cpu_algorithm("fft"):
        yield


@st.composite
def fft_geometries(draw):
    """Stride 1, dilation 1, groups == channels (any multiplier), any padding -- including
    padding as large as the kernel, where wrap-around would show first."""
    n, c, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r, s = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ph, pw = draw(st.integers(0, r)), draw(st.integers(0, s))
    h = max(1, r - 2 * ph) + draw(st.integers(0, 12))
    w = max(1, s - 2 * pw) + draw(st.integers(0, 12))
    return n, c, m, h, w, r, s, ph, pw, draw(st.booleans())


@given(fft_geometries())
def test_fft_path_matches_torch_float64(geo):
    n, c, m, h, w, r, s, ph, pw, bias = geo
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    wt = torch.randn(c * m, 1, r, s, dtype=torch.float64)
    b = torch.randn(c * m, dtype=torch.float64) if bias else None
    with fastconv.cpu_algorithm("fft"):
        compare_with_torch(x, wt, b, 1, (ph, pw), 1, c, rtol=1e-9, atol=1e-10)


def test_fft_path_gradcheck_and_gradgradcheck(fft):
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return fastconv.conv2d(x, w, b, 1, (2, 1), 1, 2)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_fft_float32_error_within_documented_bound(fft):
    """README, "FFT path": |error| <= eps * log2(L1*L2) * max|x| * sum|w| per output."""
    x = torch.rand(1, 1, 300, 280) * 100
    w = torch.randn(1, 1, 31, 31)
    y = fastconv.conv2d(x, w, None, 1, 15)
    exact = F.conv2d(x.double(), w.double(), None, 1, 15)
    bound = torch.finfo(torch.float32).eps * math.log2(330 * 310) * 100 * w.abs().sum()
    err = (y.double() - exact).abs().max()
    assert err <= bound, (err, bound)
    assert err > 0  # really the FFT path: direct float32 sums differ too, but not by 0


def test_cost_model_picks_fft_for_large_kernels_only():
    def algo(h, k, stride=1, dilation=1, groups=1, c=1):
        x, w = torch.empty(1, c, h, h), torch.empty(c, c // groups, k, k)
        return family(x, w, stride, k // 2, dilation, groups)

    assert algo(1024, 31) == "fft"
    assert algo(256, 31) == "fft"
    assert algo(1024, 3) == "rows"
    assert algo(1024, 7) == "rows"
    assert algo(1024, 15) == "rows"  # measured: rows 3.7 ms, FFT 8.7 ms
    assert algo(64, 31) == "rows"  # measured: rows 0.07 ms, FFT 0.16 ms
    assert algo(16, 5) == "rows"  # small image: call overhead decides
    assert algo(1024, 31, stride=2) == "rows"  # the FFT path is stride 1 only
    assert algo(1024, 31, dilation=2) == "rows"
    assert algo(64, 31, groups=1, c=2) == "dense"
    for plain in ("plain", "direct"):  # "direct" is the old name of "plain"
        with fastconv.cpu_algorithm(plain):
            assert algo(1024, 31) == "rows"
    with fastconv.cpu_algorithm("fft"):
        assert algo(16, 3) == "fft"
        assert algo(64, 3, stride=2) == "rows"  # forcing never applies where it cannot


def test_fft_and_row_kernels_agree_on_a_textbook_image():
    """The edge detector of the textbook through both algorithms."""
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    K = torch.tensor([[1.0, -1.0]])
    with fastconv.cpu_algorithm("fft"):
        via_fft = fastconv.corr2d(X, K)
    with fastconv.cpu_algorithm("rows"):
        via_rows = fastconv.corr2d(X, K)
    torch.testing.assert_close(via_fft, via_rows, atol=1e-6, rtol=0)
    assert via_rows[0].tolist() == [0, 1, 0, 0, 0, -1, 0]
