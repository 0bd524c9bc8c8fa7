"""The CPU output pool (csrc/cpu/runtime/output.cpp): outputs of 1 MB and more reuse the
memory of freed ones instead of faulting in fresh pages; the results stay right in reused
memory, pooled outputs behave as any tensor, and FASTCONV_OUTPUT_POOL_MB caps or turns off
what the pool keeps."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import fastconv

CL = torch.channels_last
MB = 1 << 20


def _large_layer(seed):
    """A 1x1 layer whose float32 output is 2 x 64 x 256 x 256 (32 MiB): cheap to compute."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, 256, 256, generator=g)
    w = torch.randn(64, 16, 1, 1, generator=g)
    return x, w


def test_a_freed_large_output_is_reused_and_the_next_result_is_right():
    x, w = _large_layer(0)
    y = fastconv.conv2d(x, w)
    assert y.nbytes >= 32 * MB
    _, reused0 = fastconv.output_pool_stats()
    del y
    held, _ = fastconv.output_pool_stats()
    assert held >= 32 * MB  # kept (the oldest blocks go first past the cap)
    # the reused block holds the last output's values: every element must be overwritten
    for layout in (torch.contiguous_format, CL):
        x2, w2 = _large_layer(1)
        x2 = x2.contiguous(memory_format=layout)
        y2 = fastconv.conv2d(x2, w2)
        torch.testing.assert_close(y2, F.conv2d(x2, w2), rtol=1e-4, atol=1e-4)
        assert y2.is_contiguous(memory_format=layout)
        del y2
    _, reused = fastconv.output_pool_stats()
    assert reused >= reused0 + 2


@pytest.mark.parametrize("positions, pooled", [(64 * 64, True), (32 * 64, False)])
def test_outputs_from_one_mb_on_are_pooled(positions, pooled):
    # a 64-channel float32 output of 4096 positions is 1 MiB, of 2048 half that
    x = torch.randn(1, 4, positions, 1)
    w = torch.randn(64, 4, 1, 1)
    fastconv.conv2d(x, w)  # freed at once: into the pool if pooled (the newest block stays)
    _, reused0 = fastconv.output_pool_stats()
    y = fastconv.conv2d(x, w)
    _, reused = fastconv.output_pool_stats()
    assert (reused == reused0 + 1) == pooled
    torch.testing.assert_close(y, F.conv2d(x, w), rtol=1e-4, atol=1e-4)


def test_pooled_grad_input_is_right():
    x, w = _large_layer(2)
    x = x.requires_grad_()
    y = fastconv.conv2d(x, w)
    gy = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, gy)
    del y
    x_ref = x.detach().clone().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(x_ref, w), x_ref, gy)
    torch.testing.assert_close(gx, want, rtol=1e-4, atol=1e-4)


def test_pooled_output_can_be_resized_and_written():
    x, w = _large_layer(3)
    y = fastconv.conv2d(x, w)
    y.resize_(3, 64, 256, 256)  # grows its storage through the pool's allocator
    y.fill_(1.0)
    assert y.sum().item() == y.numel()


def _pool_in_subprocess(pool_mb):
    code = (
        "import torch, fastconv\n"
        "x = torch.randn(2, 16, 256, 256); w = torch.randn(64, 16, 1, 1)\n"
        "a = fastconv.conv2d(x, w); b = fastconv.conv2d(x, w)\n"
        "del a, b\n"
        "c = fastconv.conv2d(x, w)\n"
        "print(*fastconv.output_pool_stats())\n"
    )
    env = dict(os.environ, FASTCONV_OUTPUT_POOL_MB=str(pool_mb))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    held, reused = map(int, out.split())
    return held, reused


def test_pool_cap_and_off_switch():
    # two 32 MiB blocks freed, a 40 MB cap: one kept, then reused by the third output
    held, reused = _pool_in_subprocess(40)
    assert (held, reused) == (0, 1)
    # no pool: nothing kept, nothing reused
    assert _pool_in_subprocess(0) == (0, 0)
