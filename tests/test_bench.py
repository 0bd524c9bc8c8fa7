"""The benchmark cases as pytest-benchmark tests, and the benchmark CLI end to end.

`pytest tests/test_bench.py --benchmark-only` times fastconv against torch on one case per
suite. In the normal run (pytest.ini disables benchmarking) each function runs once and
the tests act as correctness checks against a float64 reference.
"""

import json

import pytest
import torch
import torch.nn.functional as F

import fastconv
from benchmarks import bench, suites

CASES = [
    case
    for case in (c for s in suites.SUITES.values() for c in s.cases)
    if case.name in ("gray256-sobel3", "mbv2-dw144", "r18-conv2-3x3")
]
IMPLS = {"fastconv": fastconv.conv2d, "torch": F.conv2d}


def assert_close32(got, ref64):
    """float32 against a float64 reference. Rounding error grows with the reduction length
    (C*R*S terms forward, N*P*Q for the weight gradient), so the absolute tolerance is
    relative to the largest reference value."""
    atol = 1e-5 * ref64.abs().max().item()
    torch.testing.assert_close(got.double(), ref64, rtol=1e-4, atol=atol)


def conv_args(case):
    return {
        "stride": case.stride,
        "padding": case.padding,
        "dilation": case.dilation,
        "groups": case.groups,
    }


def test_suites_well_formed():
    names = [c.name for s in suites.SUITES.values() for c in s.cases]
    assert len(names) == len(set(names))
    for suite in suites.SUITES.values():
        assert suite.reason and set(suite.quick) <= {c.name for c in suite.cases}
        for case in suite.cases:
            assert case.source and min(case.out_hw) > 0 and case.C % case.groups == 0
    assert len(CASES) == 3


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward(benchmark, case, impl):
    x, w, b = bench.make_inputs(case, torch.float32, "cpu")
    kw = conv_args(case)
    benchmark.group = f"{case.name} fwd"
    y = benchmark(IMPLS[impl], x, w, b, **kw)
    ref = F.conv2d(x.double(), w.double(), None if b is None else b.double(), **kw)
    assert_close32(y, ref)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward_backward(benchmark, case, impl):
    x, w, b = bench.make_inputs(case, torch.float32, "cpu")
    kw = conv_args(case)
    inputs = [t.requires_grad_() for t in (x, w, b) if t is not None]
    grad = torch.randn(F.conv2d(x, w, b, **kw).shape)

    def step():
        return torch.autograd.grad(IMPLS[impl](x, w, b, **kw), inputs, grad)

    benchmark.group = f"{case.name} fwd+bwd"
    grads = benchmark(step)
    ref_inputs = [t.detach().double().requires_grad_() for t in inputs]
    ref_out = F.conv2d(*ref_inputs, **kw)
    ref_grads = torch.autograd.grad(ref_out, ref_inputs, grad.double())
    for got, expected in zip(grads, ref_grads):
        assert_close32(got, expected)


def test_cli_end_to_end(tmp_path):
    out, png = tmp_path / "results.json", tmp_path / "speedup.png"
    threads = torch.get_num_threads()
    try:
        argv = ["--quick", "--suite", "textbook", "--min-run-time", "0.01"]
        assert bench.main(argv + ["--json", str(out), "--plot", str(png)]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert result["meta"]["threads"] >= 1 and result["meta"]["dtype"] == "float32"
    rows = result["rows"]
    assert len(rows) == 2 * len(suites.SUITES["textbook"].quick)
    for row in rows:
        for impl in ("fastconv", "torch"):
            assert row["timings"][impl]["ms"] > 0
        assert row["max_abs_err"]["fastconv"] < 1e-3
    assert any("naive" in row["timings"] for row in rows)
    assert png.stat().st_size > 0
    assert "| case |" in (tmp_path / "results.md").read_text()


PEER_GEOMETRIES = [
    # (N, C, H, W, K, R, S, padding): valid, same (odd), partial padding, even kernel, RGB
    (1, 1, 6, 8, 1, 1, 2, 0),
    (1, 1, 17, 23, 1, 5, 5, 2),
    (2, 1, 12, 9, 1, 7, 3, 1),
    (1, 1, 10, 10, 1, 4, 4, 1),
    (2, 3, 11, 13, 3, 3, 3, 1),
]


@pytest.mark.parametrize("geo", PEER_GEOMETRIES, ids=str)
def test_image_library_peers_compute_the_same_correlation(geo):
    """The benchmark's cv2.filter2D and scipy calls (anchors, origins, modes, crops) give
    exactly the case's output, so the timings compare equal work."""
    pytest.importorskip("cv2")
    pytest.importorskip("scipy")
    n, c, h, w, k, r, s, p = geo
    case = suites.Case("t", n, c, h, w, k, r, s, padding=p, groups=c, source="test")
    x, wt, _ = bench.make_inputs(case, torch.float32, "cpu")
    ref = F.conv2d(x.double(), wt.double(), None, padding=p, groups=c)
    fns = bench.peer_fns(case, x, wt, 1)
    assert set(fns) == set(bench.PEERS)
    for name, fn in fns.items():
        assert bench.planes_err(fn(), ref) < 1e-4, name


def test_image_library_peers_only_where_they_compute_the_same_thing():
    strided = suites.Case("t", 1, 1, 9, 9, 1, 3, 3, stride=2, source="test")
    dense = suites.Case("t", 1, 2, 9, 9, 2, 3, 3, source="test")
    too_padded = suites.Case("t", 1, 1, 9, 9, 1, 3, 3, padding=2, source="test")
    for case in (strided, dense, too_padded):
        x, w, _ = bench.make_inputs(case, torch.float32, "cpu")
        assert bench.peer_fns(case, x, w, 1) == {}


def test_memory_probe_sees_a_known_workspace(monkeypatch):
    # The probe must report what a call allocates beyond its inputs and results: a
    # convolution that also fills a 64 MB temporary shows at least that much, the same
    # call without it well under it.
    from benchmarks import memory

    case = next(c for c in suites.SUITES["dense"].cases if c.name == "r50-1x1-expand")
    mb = 2**20

    def wasteful(*args, **kw):
        scratch = torch.ones(64 * mb // 4)  # touched, so resident
        return F.conv2d(*args, **kw) + scratch[:1].sum() * 0

    monkeypatch.setitem(memory.IMPLS, "wasteful", wasteful)
    extra = memory.measure(case, "wasteful", "fwd", torch.float32, 1)
    assert extra >= 64 * mb
    assert memory.measure(case, "fastconv", "fwd", torch.float32, 1) < 64 * mb


def test_memory_probe_in_a_fresh_process():
    from benchmarks import memory

    n = memory.extra_bytes("dense", "r50-1x1-expand", "fastconv", "fwd+bwd", "float32", 1)
    assert n is not None and 0 <= n < 2**30
