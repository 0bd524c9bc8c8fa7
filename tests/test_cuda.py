"""The CUDA backend against torch on the GPU: float64 differential tests, half precision by
the 2x-torch's-error rule, gradcheck/gradgradcheck, opcheck, torch.compile and streams.
Skipped, with the reason shown, where no GPU is present."""

import pytest
import torch
import torch.nn.functional as F

import fastconv

from .helpers import compare_with_torch

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


def test_compile_reduce_overhead_uses_the_current_stream():
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
