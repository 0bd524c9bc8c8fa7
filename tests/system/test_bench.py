"""The benchmark cases as pytest-benchmark tests, the benchmark CLI end to end (the
convolution suites, the models suite, the layer zoo), and the benchmarks package's layout.

`pytest tests/test_bench.py --benchmark-only` times fastconv against torch on one case per
suite. In the normal run (pytest.ini disables benchmarking) each function runs once and
the tests act as correctness checks against a float64 reference.
"""

import ast
import json
import re
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import benchmarks
import benchmarks.__main__ as bench_main
import fastconv
from benchmarks import cases, models, peers, timing, zoo
from benchmarks.__main__ import main, parse_args, results_dir
from benchmarks.inputs import make_inputs

CASES = [
    case
    for case in (c for s in cases.SUITES.values() for c in s.cases)
    if case.name in ("gray256-sobel3", "mbv2-dw144", "r18-conv2-3x3")
]
IMPLS = {"fastconv": fastconv.conv2d, "torch": F.conv2d}


def assert_close32(got, ref64):
    """float32 against a float64 reference. Rounding error grows with the reduction length
    (C*R*S terms forward, N*P*Q for the weight gradient), so the absolute tolerance is
    relative to the largest reference value."""
    atol = 1e-5 * ref64.abs().max().item()
    torch.testing.assert_close(got.double(), ref64, rtol=1e-4, atol=atol)


def test_suites_well_formed():
    names = [c.name for s in cases.SUITES.values() for c in s.cases]
    assert len(names) == len(set(names))
    for suite in cases.SUITES.values():
        assert suite.reason and set(suite.quick) <= {c.name for c in suite.cases}
        for case in suite.cases:
            assert case.source and min(case.out_hw) > 0 and case.C % case.groups == 0
    assert len(CASES) == 3


@pytest.mark.parametrize("suite", cases.SUITES)
def test_case_shapes_are_what_conv2d_computes(suite):
    # Shapes only (meta tensors): out_hw and conv_kwargs against torch's own shape rules.
    for case in cases.SUITES[suite].cases:
        x = torch.empty(case.N, case.C, case.H, case.W, device="meta")
        w = torch.empty(case.K, case.C // case.groups, case.R, case.S, device="meta")
        y = F.conv2d(x, w, **case.conv_kwargs)
        assert tuple(y.shape) == (case.N, case.K, *case.out_hw), case.name
        assert case.flops == 2 * y.numel() * w[0].numel(), case.name


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward(benchmark, case, impl):
    x, w, b = make_inputs(case, torch.float32, "cpu")
    kw = case.conv_kwargs
    benchmark.group = f"{case.name} fwd"
    y = benchmark(IMPLS[impl], x, w, b, **kw)
    ref = F.conv2d(x.double(), w.double(), None if b is None else b.double(), **kw)
    assert_close32(y, ref)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward_backward(benchmark, case, impl):
    x, w, b = make_inputs(case, torch.float32, "cpu")
    kw = case.conv_kwargs
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


def test_cli_plots_go_beside_the_json(tmp_path):
    out = tmp_path / "elsewhere" / "results.json"
    threads = torch.get_num_threads()
    try:
        argv = ["--quick", "--suite", "textbook", "--min-run-time", "0.01", "--json", str(out)]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    assert (out.parent / "speedup.png").stat().st_size > 0
    assert (out.parent / "results.md").stat().st_size > 0


def test_default_results_dir_names_a_narrower_cpu_build(monkeypatch):
    # An AVX2 machine's run must not overwrite the committed AVX-512 results.
    monkeypatch.setattr(bench_main, "cpu_flop_per_cycle", lambda dtype: 32)
    for isa, name in (("avx512", "cpu"), ("avx2", "cpu-avx2"), ("base", "cpu-base")):
        monkeypatch.setattr(fastconv, "cpu_isa", lambda isa=isa: isa)
        assert Path(results_dir("cpu", "cpu", "float32", False, False)).name == name
        assert Path(results_dir("cpu", "cpu", "bfloat16", False, True)).parts[-2:] == (
            f"{name}-bfloat16",
            "zoo",
        )
    assert Path(results_dir("nvidia-h100", "cuda", "float32", True, False)).parts[-2:] == (
        "nvidia-h100",
        "quick",
    )


def test_default_results_dir_names_a_full_width_avx512_cpu(monkeypatch):
    # Zen 5 runs 512-bit operations at full width: twice Zen 4's peak, results of their own.
    monkeypatch.setattr(fastconv, "cpu_isa", lambda: "avx512")
    monkeypatch.setattr(bench_main, "cpu_flop_per_cycle", lambda dtype: 64)
    assert Path(results_dir("cpu", "cpu", "float32", False, True)).parts[-2:] == (
        "cpu-512bit",
        "zoo",
    )
    monkeypatch.setattr(fastconv, "cpu_isa", lambda: "avx2")
    assert Path(results_dir("cpu", "cpu", "float32", False, False)).name == "cpu-avx2"


def test_cli_end_to_end(tmp_path):
    out, png = tmp_path / "results.json", tmp_path / "speedup.png"
    threads = torch.get_num_threads()
    try:
        argv = ["--quick", "--suite", "textbook", "--min-run-time", "0.01"]
        assert main(argv + ["--json", str(out), "--plot", str(png)]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert result["meta"]["threads"] >= 1 and result["meta"]["dtype"] == "float32"
    rows = result["rows"]
    assert len(rows) == 2 * len(cases.SUITES["textbook"].quick)
    for row in rows:
        for impl in ("fastconv", "torch"):
            assert row["timings"][impl]["ms"] > 0
        assert row["max_abs_err"]["fastconv"] < 1e-3
    assert any("naive" in row["timings"] for row in rows)
    assert png.stat().st_size > 0
    assert "| case |" in (tmp_path / "results.md").read_text()
    assert not (tmp_path / "models.png").exists()


def test_a_missing_zoo_layer_list_is_an_error_naming_the_argument(tmp_path, capsys):
    missing = tmp_path / "vgg16:features.0"
    with pytest.raises(SystemExit):
        parse_args(["--suite", "zoo", "--zoo-layers", str(missing)])
    assert "--zoo-layers" in capsys.readouterr().err
    assert not missing.exists()
    args = parse_args(["--suite", "zoo", "--zoo-layers", str(missing), "--zoo-collect"])
    assert args.zoo_layers == str(missing)


def test_default_run_has_the_models_but_not_the_zoo():
    suites = parse_args([]).suites
    assert set(cases.SUITES) < set(suites)
    assert "models" in suites and "zoo" not in suites
    assert parse_args(["--suite", "zoo"]).suites == ["zoo"]


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
    case = cases.Case("t", n, c, h, w, k, r, s, padding=p, groups=c, source="test")
    x, wt, _ = make_inputs(case, torch.float32, "cpu")
    ref = F.conv2d(x.double(), wt.double(), None, padding=p, groups=c)
    fns = peers.peer_fns(case, x, wt, 1)
    assert set(fns) == set(peers.PEERS)
    for name, fn in fns.items():
        assert peers.planes_err(fn(), ref) < 1e-4, name


def test_image_library_peers_only_where_they_compute_the_same_thing():
    strided = cases.Case("t", 1, 1, 9, 9, 1, 3, 3, stride=2, source="test")
    dense = cases.Case("t", 1, 2, 9, 9, 2, 3, 3, source="test")
    too_padded = cases.Case("t", 1, 1, 9, 9, 1, 3, 3, padding=2, source="test")
    for case in (strided, dense, too_padded):
        x, w, _ = make_inputs(case, torch.float32, "cpu")
        assert peers.peer_fns(case, x, w, 1) == {}


def test_memory_probe_sees_a_known_workspace(monkeypatch):
    # The probe must report what a call allocates beyond its inputs and results: a
    # convolution that also fills a 64 MB temporary shows at least that much, the same
    # call without it well under it.
    from benchmarks import memory

    case = next(c for c in cases.SUITES["dense"].cases if c.name == "r50-1x1-expand")
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


# ---- the package's layout -------------------------------------------------------------------


def package_imports():
    """{module: the package modules it imports}, read from the sources."""
    root = Path(benchmarks.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        if path.stem == "__init__":
            continue
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module == "benchmarks":
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks."):
                found.add(node.module.split(".")[1])
        graph[path.stem] = found
    return graph


def test_imports_point_one_way_as_the_package_docstring_draws_them():
    graph = package_imports()
    drawn = {}
    for line in benchmarks.__doc__.splitlines():
        m = re.fullmatch(r"\s+([\w_, ]+?)\s+->\s+(.+)", line)
        if m:
            targets = set() if m[2] == "nothing in the package" else set(m[2].split(", "))
            for module in m[1].split(", "):
                drawn[module] = targets
    assert drawn == graph

    def reaches(start, goal, seen=()):
        return any(
            n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph[start]
        )

    assert not [m for m in graph if reaches(m, m)]


# ---- timing whole models --------------------------------------------------------------------


def test_time_interleaved_calls_each_once_per_repetition_and_orders_them():
    calls = {"fast": 0, "slow": 0}

    def fast():
        calls["fast"] += 1

    def slow():
        calls["slow"] += 1
        time.sleep(0.02)

    result = timing.time_interleaved({"fast": fast, "slow": slow}, "cpu", 0, 1, 1, reps=3)
    assert calls == {"fast": 4, "slow": 4}  # one warm-up each, then 3 repetitions
    assert result["slow"]["runs"] == result["fast"]["runs"] == 3
    assert result["slow"]["ms"] >= 20 > result["fast"]["ms"]


def test_time_interleaved_fits_its_budget():
    result = timing.time_interleaved({"a": lambda: time.sleep(0.01)}, "cpu", 0.1, 2, 50)
    assert 5 <= result["a"]["runs"] <= 12  # about 0.1 s / 10 ms
    result = timing.time_interleaved({"a": lambda: time.sleep(0.01)}, "cpu", 10.0, 2, 4)
    assert result["a"]["runs"] == 4


def test_time_brief_blocks_fast_calls_and_calls_slow_ones_twice():
    envs = {"fast": {"fn": lambda: time.sleep(0.001)}, "slow": {"fn": lambda: time.sleep(0.05)}}
    result = timing.time_brief("fn()", envs, 0.06)
    fast, slow = result["fast"], result["slow"]
    assert 1.0 <= fast["ms"] < 5 and 3 <= fast["runs"] <= 60  # 3 blocks of about 20 ms
    assert slow["ms"] >= 50 and slow["runs"] == 2


def test_time_brief_interleaves_the_blocks():
    order = []
    envs = {n: {"fn": lambda n=n: (order.append(n), time.sleep(0.002))} for n in ("a", "b")}
    timing.time_brief("fn()", envs, 0.3)  # blocks of about 50 calls, even on a loaded machine
    runs = [n for i, n in enumerate(order) if i == 0 or order[i - 1] != n]
    # warm-up a, b; then rounds a b | b a | a b, where the rotation joins neighbours' blocks
    assert runs == ["a", "b", "a", "b", "a", "b"]


def test_model_check_catches_a_model_that_computes_something_else():
    def net(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval()

    x = torch.randn(1, 3, 8, 8)
    same = {(i, lay): net(0) for i in models.IMPLS for lay in models.LAYOUTS}
    diffs, _, problem, shape = models._check(same, x)
    assert problem is None and max(diffs.values()) < 1e-6 and tuple(shape) == (1, 4 * 6 * 6)
    other = {**same, ("fastconv", "channels_last"): net(1)}
    diffs, _, problem, _ = models._check(other, x)
    assert problem.startswith("channels_last") and diffs["channels_last"] > 1e-3


def test_models_suite_end_to_end(tmp_path):
    out, png = tmp_path / "results.json", tmp_path / "speedup.png"
    threads = torch.get_num_threads()
    try:
        argv = ["--suite", "models", "--models", "squeezenet1_1", "--model-modes", "infer-b1"]
        argv += ["--model-reps", "1", "--json", str(out), "--plot", str(png)]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["suite"], r["case"], r["mode"]) for r in rows] == [
        ("models", "squeezenet1_1", "infer-b1")
    ]
    row = rows[0]
    # SqueezeNet 1.1: a stem, 8 fire modules of 3 convolutions, the classifier's 1x1.
    assert row["convs"] == row["converted"] == 26
    assert row["matches"]
    for lay in models.LAYOUTS:
        assert row["max_abs_diff"][lay] <= 1e-3 * row["max_abs_logit"][lay]
    ms = {k: v["ms"] for k, v in row["timings"].items()}
    assert set(ms) == {f"{i}-{lay}" for i in ("torch", "fastconv") for lay in models.LAYOUTS}
    assert all(v > 0 for v in ms.values())
    for lay in models.LAYOUTS:
        assert row["ratio"][lay] == pytest.approx(ms[f"torch-{lay}"] / ms[f"fastconv-{lay}"])
    best_torch = min(ms["torch-nchw"], ms["torch-channels_last"])
    best_fc = min(ms["fastconv-nchw"], ms["fastconv-channels_last"])
    assert row["headline"] == pytest.approx(best_torch / best_fc)
    assert (tmp_path / "models.png").stat().st_size > 0
    assert not png.exists()  # no convolution suite ran
    md = (tmp_path / "results.md").read_text()
    assert "models, infer-b1" in md and "| squeezenet1_1 |" in md


# ---- the layer zoo --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_layers():
    return zoo.collect([("resnet18", 224)])


def find(layers, **geometry):
    return [layer for layer in layers if all(layer[k] == v for k, v in geometry.items())]


def test_zoo_collects_resnet18s_distinct_layers(resnet18_layers):
    layers = resnet18_layers
    # ResNet-18: the stem, layer1's four identical 3x3s, and per later stage a strided
    # 3x3, a 3x3 (three times) and a 1x1 strided downsample: 20 layers, 11 geometries.
    assert len(layers) == 11
    assert sum(n for layer in layers for n in layer["occurrences"].values()) == 20
    (stem,) = find(layers, input=[3, 224, 224], weight=[64, 3, 7, 7])
    assert (stem["stride"], stem["padding"], stem["bias"]) == ([2, 2], [3, 3], False)
    (down,) = find(layers, input=[64, 56, 56], weight=[128, 64, 1, 1])
    assert (down["stride"], down["padding"], down["groups"]) == ([2, 2], [0, 0], 1)
    (layer1,) = find(layers, input=[64, 56, 56], weight=[64, 64, 3, 3])
    assert layer1["occurrences"] == {"resnet18": 4}
    assert all(layer["padding_mode"] == "zeros" for layer in layers)


def test_zoo_layer_list_round_trips_and_spreads(tmp_path, resnet18_layers):
    path = tmp_path / "layers.json"
    zoo.save_layers(path, resnet18_layers, [("resnet18", 224)])
    assert zoo.load_layers(path) == resnet18_layers
    assert zoo.spread(list(range(10)), 3) == [0, 3, 6]
    assert zoo.spread(list(range(4)), None) == [0, 1, 2, 3]


def test_zoo_cache_has_the_known_layers():
    layers = zoo.load_layers(zoo.LAYERS_PATH)
    geometries = [json.dumps({k: layer[k] for k in zoo.GEOMETRY}) for layer in layers]
    assert len(geometries) == len(set(geometries)) > 300
    seen_in = {m for layer in layers for m in layer["occurrences"]}
    assert seen_in == {name for name, _ in zoo.ZOO_MODELS}
    assert find(layers, input=[3, 299, 299], weight=[32, 3, 3, 3])  # inception_v3's stem


def test_zoo_suite_times_a_subset_end_to_end(tmp_path, resnet18_layers):
    layers_path, out = tmp_path / "layers.json", tmp_path / "results.json"
    zoo.save_layers(layers_path, resnet18_layers, [("resnet18", 224)])
    threads = torch.get_num_threads()
    try:
        argv = ["--suite", "zoo", "--zoo-layers", str(layers_path), "--zoo-limit", "2"]
        argv += ["--min-run-time", "0.01", "--json", str(out), "--plot", str(tmp_path / "p.png")]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(out.read_text())["rows"]
    assert len({r["case"] for r in rows}) == 2
    assert {(r["batch"], r["layout"], r["mode"]) for r in rows} == {
        (n, lay, mode) for n in (1, 8) for lay in zoo.LAYOUTS for mode in cases.MODES
    }
    assert len(rows) == 16
    for r in rows:
        assert r["suite"] == "zoo" and not r["status"]
        t = {name: r["timings"][name]["ms"] for name in ("torch", "fastconv")}
        assert min(t.values()) > 0 and r["ratio"] == pytest.approx(t["torch"] / t["fastconv"])
        assert r["gflops"]["fastconv"] > 0
        assert r["max_abs_diff"] < 1e-3
        assert r["family"] is None or isinstance(r["family"], str)
    assert (tmp_path / "zoo.png").stat().st_size > 0
    md = (tmp_path / "results.md").read_text()
    assert "zoo, fwd+bwd" in md and zoo.SUMMARY_TITLE in md
