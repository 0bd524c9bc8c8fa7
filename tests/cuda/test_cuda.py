"""The CUDA backend against torch on the GPU: float64 differential tests, half precision by
the 2x-torch's-error rule, gradcheck/gradgradcheck, opcheck, torch.compile and streams; the
tuned tier (shared-memory direct kernels, tensor-core implicit GEMM) against torch and
against the reference tier (FASTCONV_CUDA_KERNELS=reference) on shapes that hit every tile
edge. Skipped, with the reason shown, where no GPU is present."""

import pytest
import torch
import torch.nn.functional as F

import fastconv

from ..helpers import compare_with_torch

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
    pytest.mark.skipif(not fastconv.has_cuda(), reason="fastconv was built without CUDA"),
]

LAYERS = [
    # (N, C, H, W, K, R, S, stride, padding, dilation, groups)
    (1, 1, 6, 8, 1, 1, 2, 1, 0, 1, 1),
    (2, 3, 64, 64, 3, 5, 5, 1, 2, 1, 3),
    (2, 16, 28, 28, 32, 3, 3, 2, 1, 1, 16),
    (1, 8, 40, 40, 8, 31, 31, 1, 15, 1, 8),
    (2, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1),
    (2, 64, 14, 14, 32, 1, 1, 1, 0, 1, 1),
    (1, 3, 64, 64, 16, 7, 7, 2, 3, 1, 1),
    (1, 16, 20, 20, 16, 3, 3, 1, 2, 2, 4),
    (1, 13, 9, 11, 7, 4, 2, (3, 2), (2, 1), (1, 3), 1),
]


def tensors(layer, dtype, device="cuda"):
    n, c, h, w, k, r, s, *_, groups = layer
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    wt = torch.randn(k, c // groups, r, s, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype) for t in (x, wt, b)]


@pytest.fixture
def restore_tf32():
    saved = torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("layer", LAYERS)
def test_matches_torch_float64(layer):
    x, w, b = tensors(layer, torch.float64)
    compare_with_torch(x, w, b, *layer[7:])


@pytest.mark.parametrize("layer", LAYERS)
def test_channels_last_and_strided_inputs(layer):
    x, w, b = tensors(layer, torch.float64)
    compare_with_torch(x.contiguous(memory_format=torch.channels_last), w, b, *layer[7:])
    compare_with_torch(x.transpose(2, 3).contiguous().transpose(2, 3), w, b, *layer[7:])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("layer", LAYERS[1:6])
def test_low_precision_error_at_most_twice_torchs(layer, dtype):
    x, w, b = tensors(layer, torch.float64)
    args = layer[7:]
    exact = F.conv2d(x, w, b, *args)
    ours = fastconv.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), *args).double()
    theirs = F.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), *args).double()
    assert (ours - exact).abs().max() <= 2 * (theirs - exact).abs().max() + 1e-6


@pytest.mark.parametrize("layer", [LAYERS[0], LAYERS[2], LAYERS[8]])
def test_gradcheck_and_gradgradcheck(layer):
    x, w, b = (t.requires_grad_() for t in tensors(layer, torch.float64))
    x, w, b = x[:, :, :10, :10].detach().requires_grad_(), w, b
    fn = lambda x, w, b: fastconv.conv2d(x, w, b, *layer[7:])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_opcheck_on_cuda():
    x, w, b = (t.requires_grad_() for t in tensors(LAYERS[2], torch.float32))
    torch.library.opcheck(torch.ops.fastconv.conv2d.default, (x, w, b, [2, 2], [1, 1], [1, 1], 16))


def test_backward_is_deterministic():
    x, w, b = (t.requires_grad_() for t in tensors(LAYERS[4], torch.float32))
    runs = []
    for _ in range(3):
        y = fastconv.conv2d(x, w, b, 1, 1)
        runs.append(torch.autograd.grad(y, (x, w, b), torch.ones_like(y)))
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            assert torch.equal(a, c)


def test_compile_reduce_overhead_uses_the_current_stream(restore_tf32):
    # Both sides in plain float32: with TF32 on, fastconv's and cuDNN's tensor-core sums
    # differ by ~1e-4, beyond assert_close's float32 tolerance.
    torch.backends.cudnn.allow_tf32 = False
    model = torch.nn.Sequential(fastconv.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).cuda()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    for _ in range(3):
        out = compiled(x)
    torch.testing.assert_close(out, model(x))
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y = fastconv.conv2d(x, model[0].weight, model[0].bias, padding=1)
    stream.synchronize()
    torch.testing.assert_close(y, F.conv2d(x, model[0].weight, model[0].bias, padding=1))


def test_mixed_devices_raise():
    x, w, _ = tensors(LAYERS[0], torch.float32)
    with pytest.raises(RuntimeError, match="device"):
        fastconv.conv2d(x, w.cpu())


# --- Tuned tier -------------------------------------------------------------------------
# The direct kernels (groups == C) tile the output in 32 columns x 32 rows (8 rows for
# large strides) and the kernel in chunks of at most 32 x 32 taps; the implicit GEMM tiles
# M x N x K by 64 x 64 x 32. The sizes below sit on both sides of those edges.
DIRECT_LAYERS = [
    # (N, C, H, W, K, R, S, stride, padding, dilation, groups)
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1),  # one pixel, 1x1 kernel
    (2, 3, 31, 33, 3, 3, 3, 1, 1, 1, 3),  # output 31 x 33: tile - 1 rows, tile + 1 columns
    (1, 2, 32, 32, 2, 3, 3, 1, 1, 1, 2),  # exactly one tile
    (1, 2, 33, 31, 4, 4, 2, 1, (2, 0), 1, 2),  # even kernel, multiplier 2, uneven padding
    (2, 4, 40, 45, 8, 5, 5, 2, 2, 1, 4),  # stride 2, multiplier 2, two wgrad splits
    (1, 3, 37, 29, 3, 3, 3, 1, 2, 2, 3),  # dilation 2
    (1, 2, 70, 70, 2, 31, 31, 1, 15, 1, 2),  # 31 x 31 in one chunk
    (1, 1, 50, 50, 1, 31, 31, 2, 15, 2, 1),  # 31 x 31, stride 2, dilation 2: chunked kernel
    (1, 2, 12, 12, 2, 3, 3, 1, 5, 1, 2),  # padding beyond the kernel span (negative dgrad pad)
    (1, 1, 200, 9, 1, 40, 3, 1, 0, 1, 1),  # 40 rows of taps: a full and a partial chunk
    (3, 1, 64, 64, 2, 7, 7, (3, 1), 3, (1, 2), 1),  # one-channel image, multiplier 2
    (1, 1, 20, 700, 1, 3, 3, (1, 20), 1, 1, 1),  # stride 20: 8-row tiles, float64 -> reference
    (5, 6, 7, 7, 6, 3, 3, 1, 1, 1, 6),  # small planes, many images
]
DENSE_LAYERS = [
    (2, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1),  # M = 392: a partial M tile; K = 288
    (1, 3, 17, 19, 5, 3, 3, 1, 1, 1, 1),  # K = 27, N = 5: every tail inside one tile
    (2, 64, 9, 9, 130, 1, 1, 1, 0, 1, 1),  # 1x1, N = 130: two full N tiles and a sliver
    (1, 16, 20, 20, 32, 3, 3, 2, 1, 1, 4),  # groups 4, stride 2
    (1, 12, 15, 13, 8, 5, 3, (2, 1), (2, 0), (1, 2), 2),  # mixed stride/dilation/padding
    (1, 8, 33, 33, 16, 4, 4, 2, 1, 2, 1),  # even kernel, strided dgrad with gaps
]
TUNED_LAYERS = DIRECT_LAYERS + DENSE_LAYERS
GRAD_NAMES = ("output", "grad_input", "grad_weight", "grad_bias")


def _grad_output(layer, dtype):
    n, _, h, w, k, r, s, stride, padding, dilation, _ = layer
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    p = (h + 2 * ph - dh * (r - 1) - 1) // sh + 1
    q = (w + 2 * pw - dw * (s - 1) - 1) // sw + 1
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, k, p, q, generator=g, dtype=torch.float64).to("cuda", dtype)


def _run(conv, x, w, b, args, gy):
    """Output and the three gradients of conv at these tensors."""
    leaves = [t.detach().requires_grad_() for t in (x, w, b)]
    y = conv(*leaves, *args)
    return [y.detach(), *torch.autograd.grad(y, leaves, gy)]


def _abs_sums(x, w, b, args, gy):
    """sum |x|·|w| (+|b|) for the output and the matching sums for each gradient, in float64:
    the scale of the rounding error bounds."""
    leaves = [t.detach().double().abs() for t in (x, w, b)]
    return _run(F.conv2d, *leaves, args, gy.double().abs())


@pytest.fixture
def reference_tier(monkeypatch):
    """Runs the test body's marked calls on the reference tier: call it to switch."""
    return lambda: monkeypatch.setenv("FASTCONV_CUDA_KERNELS", "reference")


@pytest.mark.parametrize("layer", TUNED_LAYERS)
def test_tuned_tier_float64_matches_torch(layer):
    x, w, b = tensors(layer, torch.float64)
    compare_with_torch(x, w, b, *layer[7:])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layer", TUNED_LAYERS)
def test_tuned_tier_matches_reference_tier(layer, dtype, reference_tier, restore_tf32):
    torch.backends.cudnn.allow_tf32 = False  # float32 compares the direct kernels only
    x, w, b = tensors(layer, dtype)
    gy = _grad_output(layer, dtype)
    tuned = _run(fastconv.conv2d, x, w, b, layer[7:], gy)
    reference_tier()
    ref = _run(fastconv.conv2d, x, w, b, layer[7:], gy)
    for name, a, e in zip(GRAD_NAMES, tuned, ref):
        # Only the summation order differs: float64 agrees to ~1e-13 of the largest value,
        # float32 (grad-weight sums up to 10^4 terms) to ~1e-5.
        atol = (1e-10 if dtype == torch.float64 else 1e-5) * max(1.0, e.abs().max().item())
        torch.testing.assert_close(a, e, rtol=0, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def test_kernel_switch_rejects_unknown_values(monkeypatch):
    x, w, _ = tensors(LAYERS[0], torch.float32)
    monkeypatch.setenv("FASTCONV_CUDA_KERNELS", "fastest")
    with pytest.raises(RuntimeError, match="FASTCONV_CUDA_KERNELS"):
        fastconv.conv2d(x, w)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layer", DENSE_LAYERS + DIRECT_LAYERS[1:8])
def test_half_precision_error_at_most_4x_torchs(layer, dtype):
    """Tensor-core (dense) and direct (depthwise) paths, forward and all gradients: error
    vs float64 on the same rounded inputs at most 4x that of torch in the same dtype."""
    x, w, b = tensors(layer, dtype)
    gy = _grad_output(layer, dtype)
    args = layer[7:]
    exact = _run(F.conv2d, x.double(), w.double(), b.double(), args, gy.double())
    ours = _run(fastconv.conv2d, x, w, b, args, gy)
    theirs = _run(F.conv2d, x, w, b, args, gy)
    for name, o, t, e in zip(GRAD_NAMES, ours, theirs, exact):
        assert o.dtype == dtype, name
        err, torch_err = (o.double() - e).abs().max(), (t.double() - e).abs().max()
        assert err <= 4 * torch_err + 1e-6 * e.abs().max(), (name, err.item(), torch_err.item())


@pytest.mark.skipif(
    torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 0),
    reason="TF32 tensor cores need compute capability 8.0",
)
@pytest.mark.parametrize("layer", DENSE_LAYERS)
def test_tf32_follows_cudnn_allow_tf32(layer, restore_tf32):
    """float32 on a dense layer: with torch.backends.cudnn.allow_tf32 False every result is
    within float32's rounding bound; with it True within TF32's (inputs rounded to 10
    mantissa bits), and the forward error is far above float32's, so TF32 really ran."""
    x, w, b = tensors(layer, torch.float32)
    gy = _grad_output(layer, torch.float32)
    args = layer[7:]
    n, c, _, _, k, r, s, *_, groups = layer
    exact = _run(F.conv2d, x.double(), w.double(), b.double(), args, gy.double())
    scale = _abs_sums(x, w, b, args, gy)
    terms = max(c // groups * r * s, k // groups * r * s, n * gy.shape[2] * gy.shape[3]) + 2
    fwd_err = {}
    for allow_tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = allow_tf32
        ours = _run(fastconv.conv2d, x, w, b, args, gy)
        unit = 2.0**-10 if allow_tf32 else 0.0  # two roundings of 2^-11 per product
        for name, o, e, a in zip(GRAD_NAMES, ours, exact, scale):
            err = (o.double() - e).abs()
            bound = 2 * (unit + terms * 2.0**-24) * a
            assert (err <= bound).all(), (name, allow_tf32, (err - bound).max().item())
        fwd_err[allow_tf32] = (ours[0].double() - exact[0]).abs().max().item()
    assert fwd_err[True] > 10 * fwd_err[False], fwd_err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize(
    "layer",
    [
        (4, 8, 64, 64, 16, 5, 5, 1, 2, 1, 8),  # depthwise, 16 splits
        (2, 4, 70, 70, 4, 31, 31, 1, 15, 1, 4),  # depthwise 31x31
        (8, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1),  # dense: tensor-core split-K (fp32 as TF32)
    ],
)
def test_weight_grad_is_bitwise_reproducible(layer, dtype):
    """The tuned grad-weights split the reduction over blocks (partial sums, then a fixed-order
    sum): two runs must agree to the bit."""
    x, w, _ = tensors(layer, dtype)
    gy = _grad_output(layer, dtype)
    args = [list(v) if isinstance(v, tuple) else [v, v] for v in layer[7:10]]
    runs = [
        torch.ops.fastconv.conv2d_backward(gy, x, w, *args, layer[10], [True, True, True])
        for _ in range(2)
    ]
    for a, c in zip(*runs):
        assert torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_results_have_torchs_memory_format_on_cuda(dtype):
    """As on the CPU (tests/api/test_memory_format.py): channels_last results exactly where
    cuDNN's are (never for float64)."""
    cl = torch.channels_last
    for xs, ws, groups in [((2, 8, 9, 9), (16, 8, 3, 3), 1), ((2, 8, 9, 9), (8, 1, 3, 3), 8)]:
        for x_cl, w_cl in [(False, False), (True, False), (False, True), (True, True)]:
            x = torch.randn(xs, device="cuda", dtype=dtype)
            w = torch.randn(ws, device="cuda", dtype=dtype)
            x = x.contiguous(memory_format=cl) if x_cl else x
            w = w.contiguous(memory_format=cl) if w_cl else w
            ours = fastconv.conv2d(x, w, None, 1, 1, 1, groups)
            theirs = torch.nn.functional.conv2d(x, w, None, 1, 1, 1, groups)
            assert ours.is_contiguous(memory_format=cl) == theirs.is_contiguous(memory_format=cl), (
                dtype,
                x_cl,
                w_cl,
                groups,
            )
