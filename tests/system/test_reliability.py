"""Reliability: determinism, concurrency, memory leaks, interruption, huge tensors."""

import gc
import threading

import pytest
import torch
import torch.nn.functional as F

import fastconv

# (input shape, weight shape, stride, padding, groups): both kernel families, strided too.
SHAPES = [
    ((4, 8, 33, 31), (8, 1, 5, 5), 1, 2, 8),
    ((2, 6, 40, 36), (12, 1, 3, 3), 2, 1, 6),
    ((1, 1, 300, 280), (1, 1, 7, 7), 1, 3, 1),
    ((4, 16, 20, 20), (32, 16, 3, 3), 1, 1, 1),
    ((3, 3, 64, 64), (16, 3, 7, 7), 2, 3, 1),
    ((2, 32, 14, 14), (32, 4, 3, 3), 2, 1, 8),
]


def grads(shape, threads):
    xs, ws, stride, padding, groups = shape
    g = torch.Generator().manual_seed(1)
    x = torch.randn(xs, generator=g, requires_grad=True)
    w = torch.randn(ws, generator=g, requires_grad=True)
    b = torch.randn(ws[0], generator=g, requires_grad=True)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y = fastconv.conv2d(x, w, b, stride, padding, 1, groups)
        gy = torch.randn(y.shape, generator=g)
        return [y.detach()] + list(torch.autograd.grad(y, (x, w, b), gy))
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[1])))
def test_bitwise_deterministic_across_runs_and_thread_counts(shape):
    first = grads(shape, 2)
    for threads in (2, 1, 2):
        for a, b in zip(first, grads(shape, threads)):
            assert torch.equal(a, b)


def test_concurrent_calls_from_python_threads():
    cases = []
    for xs, ws, stride, padding, groups in SHAPES:
        x, w = torch.randn(xs, dtype=torch.float64), torch.randn(ws, dtype=torch.float64)
        cases.append(
            (x, w, stride, padding, groups, F.conv2d(x, w, None, stride, padding, 1, groups))
        )
    errors = []

    def worker(seed):
        try:
            for i in range(20):
                x, w, stride, padding, groups, ref = cases[(seed + i) % len(cases)]
                if i % 7 == 3:
                    torch.set_num_threads(1 + (seed + i) % 2)
                out = fastconv.conv2d(x, w, None, stride, padding, 1, groups)
                torch.testing.assert_close(out, ref)
        except Exception as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    old = torch.get_num_threads()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        torch.set_num_threads(old)
    assert not errors, errors[0]


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not hasattr(__import__("os"), "sysconf"), reason="needs /proc")
def test_no_memory_growth_over_10000_training_calls():
    layer = fastconv.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 12, 12, requires_grad=True)

    def run(n):
        for _ in range(n):
            layer(x).sum().backward()
        layer.zero_grad(set_to_none=True)
        x.grad = None
        gc.collect()

    run(500)  # warm up allocator caches
    before = _rss_bytes()
    run(10_000)
    grown = _rss_bytes() - before
    assert grown < 16 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB"


def test_interrupted_training_loop_leaves_no_bad_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        fastconv.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), fastconv.Conv2d(4, 1, 3)
    )
    x = torch.randn(2, 1, 16, 16)
    calls = 0

    def interrupting_hook(grad):
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt

    handle = model[2].weight.register_hook(interrupting_hook)
    with pytest.raises(KeyboardInterrupt):
        model(x).sum().backward()
    handle.remove()
    assert calls == 1
    model.zero_grad()
    out = model(x)
    out.sum().backward()
    ref = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3)
    )
    ref.load_state_dict(model.state_dict())
    torch.testing.assert_close(out, ref(x))
    ref(x).sum().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_input_with_more_than_2_31_elements():
    """64-bit index math: a single image of 46,342^2 > 2^31 pixels, strided 2x2 filter."""
    side = 46_342
    assert side * side > 2**31
    x = torch.empty(1, 1, side, side)
    x[..., :, :] = torch.arange(side, dtype=torch.float32).remainder_(17)[None, :] - 8
    x[..., -3:, -3:] = 100.0  # something distinctive past the 2^31-th element
    w = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]], requires_grad=True)
    y = fastconv.conv2d(x, w, stride=46)
    ref = F.conv2d(x, w.detach(), stride=46)
    torch.testing.assert_close(y, ref)
    (gw,) = torch.autograd.grad(y.sum(), w)
    # d sum(y) / d w[r, s] is the sum of the input pixels tap (r, s) reads.
    p, q = y.shape[2:]
    expected = torch.tensor(
        [[float(x[0, 0, r::46, s::46][:p, :q].double().sum()) for s in range(2)] for r in range(2)]
    )
    torch.testing.assert_close(gw[0, 0], expected, rtol=1e-5, atol=1e-2)
