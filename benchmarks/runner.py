"""One benchmark case end to end: its accuracy against a float64 reference, every
implementation's timing in both modes, and the result rows written to results.json."""

import torch
import torch.nn.functional as F

import fastconv

from . import memory
from .cases import MODES
from .inputs import make_inputs
from .peers import FILTER2D_BWD_FACTOR, FILTER2D_BWD_NAME, peer_fns, planes_err
from .timing import (
    NAIVE_BUDGET_S,
    conv_statement,
    naive_estimate_s,
    time_autorange,
    time_naive,
)

# Suites whose rows also report each implementation's peak extra memory (one cold call in
# a fresh process: benchmarks/memory.py), the dense layers' workspace question.
MEMORY_SUITES = ("dense",)


def torch_variants(device):
    """(column name, cudnn.benchmark) of the torch baselines."""
    if device == "cuda":
        return [("torch", False), ("torch-cudnn-bench", True)]
    return [("torch", None)]


def max_abs_err(y, ref):
    return (y.double() - ref).abs().max().item() if y.numel() else 0.0


def run_case(case, device, dtype, min_run_time):
    """Two rows (fwd, fwd+bwd): {impl: timing dict or None}, {impl: status}, errors."""
    x, w, b = make_inputs(case, dtype, device)
    kw = case.conv_kwargs
    impls = {"fastconv": fastconv.conv2d}
    impls.update({name: F.conv2d for name, _ in torch_variants(device)})
    timings = {mode: {} for mode in MODES}
    status = {mode: {} for mode in MODES}

    # Accuracy: forward output only, against float64 torch on the same (rounded) inputs.
    ref = F.conv2d(x.double(), w.double(), None if b is None else b.double(), **kw)
    errors = {}
    for name, fn in (("fastconv", fastconv.conv2d), ("torch", F.conv2d)):
        try:
            errors[name] = max_abs_err(fn(x, w, b, **kw), ref)
        except Exception as e:  # a missing dtype/device kernel: report, keep benchmarking
            errors[name] = None
            status["fwd"][name] = status["fwd+bwd"][name] = f"error: {e}".splitlines()[0]
    peers = peer_fns(case, x, w, torch.get_num_threads()) if device == "cpu" else {}
    for name, fn in peers.items():
        errors[name] = planes_err(fn(), ref)
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    grad = grad.to(device=device, dtype=dtype)
    del ref

    for mode in MODES:
        if not case.single_plane:
            status[mode]["naive"] = "n/a"
        elif mode != "fwd":
            status[mode]["naive"] = "n/a (forward only)"
        elif naive_estimate_s(case, device) > NAIVE_BUDGET_S:
            status[mode]["naive"] = "skipped (too slow)"
        else:
            X = F.pad(x[0, 0], [case.padding] * 4)  # corr2d is 'valid' only
            timings[mode]["naive"] = time_naive(X, w[0, 0], min_run_time)
            status[mode]["naive"] = "ok"

        stmt, env = conv_statement(mode, x, w, b, kw, grad)
        for name, fn in peers.items():
            if mode == "fwd":
                timings[mode][name] = time_autorange("fn()", {"fn": fn}, min_run_time)
                status[mode][name] = "ok"
            else:
                status[mode][name] = "n/a (forward only)"
        bench_flags = dict(torch_variants(device))
        for name, fn in impls.items():
            if status[mode].get(name, "ok") != "ok":
                continue
            saved = torch.backends.cudnn.benchmark
            if bench_flags.get(name) is not None:
                torch.backends.cudnn.benchmark = bench_flags[name]
            try:
                timings[mode][name] = time_autorange(stmt, dict(env, fn=fn), min_run_time)
                status[mode][name] = "ok"
            except Exception as e:
                status[mode][name] = f"error: {e}".splitlines()[0]
            finally:
                torch.backends.cudnn.benchmark = saved
    return timings, status, errors


def make_rows(suite, case, timings, status, errors, peak):
    rows = []
    for mode in MODES:
        t = timings[mode]
        flops = case.flops * (3 if mode == "fwd+bwd" else 1)  # dX and dW each cost a forward
        fc = t.get("fastconv")
        speedup, gflops, pct = {}, {}, {}
        for name, timing in t.items():
            if fc and name != "fastconv":
                speedup[name] = timing["ms"] / fc["ms"]
            if name != "naive":
                gflops[name] = flops / (timing["ms"] * 1e6)
                pct[name] = 100.0 * gflops[name] / peak if peak else None
        cv2_fwd = timings["fwd"].get("cv2.filter2D")
        if fc and mode == "fwd+bwd" and cv2_fwd:
            speedup[FILTER2D_BWD_NAME] = FILTER2D_BWD_FACTOR * cv2_fwd["ms"] / fc["ms"]
        rows.append(
            {
                "suite": suite.name,
                "case": case.name,
                "mode": mode,
                "shape": case.shape,
                "source": case.source,
                "params": {
                    k: getattr(case, k)
                    for k in ("N", "C", "H", "W", "K", "R", "S", "stride", "padding")
                    + ("dilation", "groups", "bias")
                },
                "flops": flops,
                "timings": t,
                "status": status[mode],
                "speedup": speedup,  # baseline time / fastconv time
                "gflops": gflops,
                "pct_peak": pct,
                "max_abs_err": errors,  # forward output vs float64, in both modes' rows
            }
        )
    return rows


def add_extra_memory(rows, suite, case, dtype_name, threads):
    """Each row's {impl: peak extra MB} (None where the probe cannot run), measured by
    memory.py in fresh processes."""
    for r in rows:
        r["extra_mb"] = {}
        for name in ("fastconv", "torch"):
            n = memory.extra_bytes(suite, case, name, r["mode"], dtype_name, threads)
            r["extra_mb"][name] = None if n is None else n / 2**20
