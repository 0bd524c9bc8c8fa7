"""Benchmark fastconv against torch.nn.functional.conv2d, the textbook's naive loop and,
for image filtering on the CPU, cv2.filter2D and scipy (ndimage.correlate, signal.correlate).

    python -m benchmarks.bench                      # all suites, CPU, float32 (`make bench`)
    python -m benchmarks.bench --quick              # a few cases, short timing
    python -m benchmarks.bench --device cuda --dtype tf32 --suite dense,depthwise

For every case (see benchmarks/suites.py) and mode (forward; forward+backward w.r.t. input,
weight and bias) it times each implementation with torch.utils.benchmark's
blocked_autorange, and reports median time, speed-up over each baseline (baseline time /
fastconv time), GFLOP/s, percent of the device's peak and the max abs error against a
float64 reference. The image libraries are forward-only and not differentiable; the
fwd+bwd rows compare fastconv's forward+backward with 3x their forward
("3x cv2.filter2D").
Results go to a terminal table, results.json, results.md and speedup.png under
benchmarks/results/<device>/ unless --json / --plot say otherwise.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer
from tqdm import tqdm

import fastconv

from . import memory
from .suites import SUITES, select

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "tf32": torch.float32,  # float32 storage, TF32 tensor-core math (CUDA only)
}
MODES = ("fwd", "fwd+bwd")
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# The naive loop costs about 8 us of Python per output pixel on CPU almost regardless of the
# kernel size (measured: 64^2..256^2 images, 3x3..7x7 kernels), so the estimate is per pixel,
# with a small per-tap term for the large kernels. On CUDA every pixel launches kernels.
NAIVE_S_PER_PIXEL = {"cpu": 1e-5, "cuda": 5e-5}
NAIVE_S_PER_TAP = 5e-9
NAIVE_BUDGET_S = 1.0


# ---- device description and peak ----------------------------------------------------------


def _cpuinfo():
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in fields:  # the first processor's entry
                    fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def others_cpu_seconds():
    """CPU seconds other processes have used so far: the busy time of all CPUs (/proc/stat)
    minus this process's and its finished children's (the memory probes, which never run
    while something is timed). Other load skews multi-threaded timings: an OpenMP barrier
    waits a whole time slice for a descheduled thread."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9]
            )
    except (OSError, ValueError):
        return None
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy - own.user - own.system - own.children_user - own.children_system


def others_cpu_fraction(since, seconds):
    """The share of all CPUs that other processes kept busy since `since` (seconds ago)."""
    now = others_cpu_seconds()
    if now is None or since is None or seconds <= 0:
        return None
    return max(0.0, (now - since) / (seconds * (os.cpu_count() or 1)))


def cpu_model():
    return _cpuinfo().get("model name") or platform.processor() or "unknown"


def cpu_mhz():
    """The maximum clock when cpufreq exposes it, else the current one from /proc/cpuinfo
    (which virtual machines often report as the nominal clock)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1000.0  # kHz
    except (OSError, ValueError):
        pass
    try:
        return float(_cpuinfo()["cpu MHz"])
    except (KeyError, ValueError):
        return None


def cpu_flop_per_cycle(dtype_name):
    """FLOP/cycle/core = 2 FMA pipes x lanes x 2 (an FMA is a multiply and an add), with
    lanes = vector bits / element bits. Vectors are 256-bit for AVX2 and also for AMD's
    AVX-512 before Zen 5 (Zen 4 runs a 512-bit op as two 256-bit halves), 512-bit for
    Intel AVX-512 and Zen 5 (family 26), 128-bit otherwise (SSE, NEON). So float32 is 32
    FLOP/cycle on AVX2 and Zen 4, 64 on full AVX-512; float64 is half that. bfloat16 is
    twice float32 where the CPU has AVX-512 BF16 (vdpbf16ps: two multiply-adds per float32
    lane; fastconv's dense bf16 kernel uses it), float16 counts as float32 (computed so)."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    amd = info.get("vendor_id") == "AuthenticAMD"
    family = int(info.get("cpu family", "0") or 0)
    if "avx512f" in flags and (not amd or family >= 26):
        bits = 512
    elif ("avx2" in flags and "fma" in flags) or "avx512f" in flags:
        bits = 256
    else:
        bits = 128
    element_bits = 64 if dtype_name == "float64" else 32
    pairs = 2 if dtype_name == "bfloat16" and "avx512_bf16" in flags else 1
    return 2 * (bits // element_bits) * 2 * pairs


def cpu_peak_gflops(threads, dtype_name):
    """threads x GHz x FLOP/cycle/core, one thread per physical core assumed (SMT siblings
    share the FMA pipes, so they add no peak)."""
    mhz = cpu_mhz()
    if mhz is None:
        return None, "unknown (no clock frequency found)"
    fpc = cpu_flop_per_cycle(dtype_name)
    peak = threads * mhz / 1000.0 * fpc
    return peak, f"{threads} cores x {mhz / 1000:.2f} GHz x {fpc} FLOP/cycle"


# Dense (no sparsity) peaks in TFLOP/s from NVIDIA's data sheets, matched as substrings of
# the device name in order. float64 is the vector (non tensor-core) rate.
GPU_PEAK_TFLOPS = (
    ("H100 PCIe", {"float32": 51, "tf32": 378, "bfloat16": 756, "float16": 756, "float64": 26}),
    ("H100", {"float32": 67, "tf32": 495, "bfloat16": 989, "float16": 989, "float64": 34}),
    ("H200", {"float32": 67, "tf32": 495, "bfloat16": 989, "float16": 989, "float64": 34}),
    ("A100", {"float32": 19.5, "tf32": 156, "bfloat16": 312, "float16": 312, "float64": 9.7}),
)


def gpu_peak_gflops(name, dtype_name):
    for key, table in GPU_PEAK_TFLOPS:
        if key in name:
            return table[dtype_name] * 1000.0, f"{key} data sheet, {dtype_name}"
    return None, f"unknown GPU {name!r}"


def slugify(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---- timing ---------------------------------------------------------------------------------


SLOW_CALL_S = 0.5


def time_autorange(stmt, env, min_run_time):
    """Median and IQR in ms. blocked_autorange syncs CUDA and picks the block size; it runs
    at torch's current thread count only when told (its default is one thread). A call
    slower than SLOW_CALL_S (torch's backward on a 4K image) is timed twice, no more."""
    timer = Timer(stmt, globals=env, num_threads=torch.get_num_threads())
    first = timer.timeit(1)
    if first.median > SLOW_CALL_S:
        m = timer.timeit(1)
        t = min(first.median, m.median)
        return {"ms": t * 1e3, "iqr_ms": abs(first.median - m.median) * 1e3, "runs": 2}
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3, "runs": len(m.times) * m.number_per_run}


def time_naive(X, K, min_run_time):
    """The naive loop takes up to a second a call, so a few plain calls suffice."""
    times = []
    while not times or (sum(times) < min_run_time and len(times) < 3):
        if X.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fastconv.reference.corr2d(X, K)
        if X.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"ms": statistics.median(times) * 1e3, "iqr_ms": (q[2] - q[0]) * 1e3, "runs": len(times)}


def naive_estimate_s(case, device):
    p, q = case.out_hw
    return p * q * (NAIVE_S_PER_PIXEL[device] + case.R * case.S * NAIVE_S_PER_TAP)


# ---- image-filtering libraries (CPU, forward only) ------------------------------------------

PEERS = ("cv2.filter2D", "scipy.ndimage", "scipy.signal")
# fastconv's forward+backward against this many of filter2D's forwards (the issue's target).
FILTER2D_BWD_FACTOR = 3
FILTER2D_BWD_NAME = f"{FILTER2D_BWD_FACTOR}x cv2.filter2D"


def setup_peers(threads):
    """Match the libraries' thread counts to torch's; {name: version} of those installed."""
    found = {}
    try:
        import cv2

        cv2.setNumThreads(threads)
        found["cv2.filter2D"] = cv2.__version__
    except ImportError:
        pass
    try:
        import scipy
        import scipy.ndimage  # noqa: F401
        import scipy.signal  # noqa: F401

        found["scipy.ndimage"] = found["scipy.signal"] = scipy.__version__
    except ImportError:
        pass
    return found


def peer_fns(case, x, w, threads):
    """{name: callable computing the case's output as a list of 2-D NumPy planes} for the
    image libraries that compute exactly the same thing: one kernel per channel, stride 1,
    dilation 1, zero border, output no larger than the image. Users loop over planes, so
    the loop is part of the cost. {} for every other case."""
    if (case.groups, case.K, case.stride, case.dilation) != (case.C, case.C, 1, 1):
        return {}
    (P, Q), p, R, S = case.out_hw, case.padding, case.R, case.S
    if P > case.H or Q > case.W or p > min(R, S) - 1:
        return {}
    xs, ws = x.numpy(), w[:, 0].numpy()
    planes = [(n, c) for n in range(case.N) for c in range(case.C)]
    fns = {}
    try:
        import cv2

        # dst(y, x) = sum k(y', x') src(y + y' - anchor.y, x + x' - anchor.x); anchor is (x, y)
        def run_cv2():
            return [
                cv2.filter2D(xs[n, c], -1, ws[c], anchor=(p, p), borderType=cv2.BORDER_CONSTANT)[
                    :P, :Q
                ]
                for n, c in planes
            ]

        fns["cv2.filter2D"] = run_cv2
    except ImportError:
        pass
    try:
        import scipy.fft
        from scipy import ndimage, signal

        origin = (p - R // 2, p - S // 2)  # filter centre at k // 2 + origin

        def run_ndimage():
            return [
                ndimage.correlate(xs[n, c], ws[c], mode="constant", cval=0.0, origin=origin)[:P, :Q]
                for n, c in planes
            ]

        if p == 0:
            mode, crop = "valid", (slice(None), slice(None))
        elif R % 2 and S % 2 and p == (R - 1) // 2 == (S - 1) // 2:
            mode, crop = "same", (slice(None), slice(None))
        else:
            mode, crop = "full", (slice(R - 1 - p, R - 1 - p + P), slice(S - 1 - p, S - 1 - p + Q))

        def run_signal():  # method="auto": direct or FFT by its own cost model
            with scipy.fft.set_workers(threads):
                return [signal.correlate(xs[n, c], ws[c], mode=mode)[crop] for n, c in planes]

        fns["scipy.ndimage"] = run_ndimage
        fns["scipy.signal"] = run_signal
    except ImportError:
        pass
    return fns


def planes_err(planes, ref):
    """Max abs error of a list of NumPy planes against the float64 reference [N, C, P, Q]."""
    got = torch.from_numpy(__import__("numpy").stack(planes)).double()
    return (got - ref.reshape(got.shape)).abs().max().item() if got.numel() else 0.0


# ---- one case -------------------------------------------------------------------------------


def torch_variants(device):
    """(column name, cudnn.benchmark) of the torch baselines."""
    if device == "cuda":
        return [("torch", False), ("torch-cudnn-bench", True)]
    return [("torch", None)]


def make_inputs(case, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    x = randn(case.N, case.C, case.H, case.W)
    w = randn(case.K, case.C // case.groups, case.R, case.S)
    b = randn(case.K) if case.bias else None
    return x, w, b


def max_abs_err(y, ref):
    return (y.double() - ref).abs().max().item() if y.numel() else 0.0


def run_case(case, device, dtype, min_run_time):
    """Two rows (fwd, fwd+bwd): {impl: timing dict or None}, {impl: status}, errors."""
    x, w, b = make_inputs(case, dtype, device)
    kw = {
        "stride": case.stride,
        "padding": case.padding,
        "dilation": case.dilation,
        "groups": case.groups,
    }
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

        if mode == "fwd":
            env = {"x": x, "w": w, "b": b, "kw": kw}
            stmt = "fn(x, w, b, **kw)"
        else:
            xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
            bg = None if b is None else b.detach().requires_grad_()
            inputs = (xg, wg) if bg is None else (xg, wg, bg)
            env = {"x": xg, "w": wg, "b": bg, "kw": kw, "inputs": inputs, "grad": grad}
            stmt = "torch.autograd.grad(fn(x, w, b, **kw), inputs, grad)"
        env["torch"] = torch
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


# ---- reporting ------------------------------------------------------------------------------


def fmt_ms(v):
    if v is None:
        return "-"
    for limit, digits in ((100, 0), (10, 1), (1, 2), (0.1, 3)):
        if v >= limit:
            return f"{v:.{digits}f}"
    return f"{v:.4f}"


def fmt_num(v, spec):
    return "-" if v is None else format(v, spec)


def present(rows, names, key):
    """The names, in order, that some row has under `key` ("timings" or "speedup")."""
    return [n for n in names if any(n in r[key] for r in rows)]


def table(rows, torch_names):
    """Header and cells of one suite/mode table: torch and, where they ran, the image
    libraries, as milliseconds and as ratios to fastconv."""
    timed = present(rows, list(torch_names) + list(PEERS), "timings")
    ratios = present(rows, timed + [FILTER2D_BWD_NAME], "speedup")
    header = ["case", "shape", "naive ms", "fastconv ms (iqr)"]
    header += [f"{n} ms" for n in timed]
    header += [f"{n}/fc" for n in ratios] + ["naive/fc", "fc GFLOP/s", "% peak"]
    header += ["max err fc", "max err torch"]
    memory_cols = any("extra_mb" in r for r in rows)
    if memory_cols:
        header += ["fc extra MB", "torch extra MB"]
    body = []
    for r in rows:
        t, st = r["timings"], r["status"]

        def ms(name, st=st, t=t):
            if name in t:
                return fmt_ms(t[name]["ms"])
            s = st.get(name, "-")
            return "skipped" if s.startswith("skipped") else ("error" if "error" in s else "-")

        fc = t.get("fastconv")
        fc_cell = ms("fastconv")
        if fc and fc["ms"] > 0:
            fc_cell += f" ({100 * fc['iqr_ms'] / fc['ms']:.0f}%)"
        cells = [r["case"], r["shape"], ms("naive"), fc_cell] + [ms(n) for n in timed]
        cells += [fmt_num(r["speedup"].get(n), ".2f") + "x" * (n in r["speedup"]) for n in ratios]
        naive = r["speedup"].get("naive")
        cells += [fmt_num(naive, ".0f") + "x" * (naive is not None)]
        cells += [
            fmt_num(r["gflops"].get("fastconv"), ".1f"),
            fmt_num(r["pct_peak"].get("fastconv"), ".1f"),
            fmt_num(r["max_abs_err"].get("fastconv"), ".1e"),
            fmt_num(r["max_abs_err"].get("torch"), ".1e"),
        ]
        if memory_cols:
            mem = r.get("extra_mb", {})
            cells += [fmt_num(mem.get("fastconv"), ".1f"), fmt_num(mem.get("torch"), ".1f")]
        body.append(cells)
    return header, body


def render_text(header, body):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]

    def line(cells):
        out = [f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out)

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(c) for c in body])


def render_markdown(header, body):
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in body]
    return "\n".join(lines)


SUMMARY_TITLE = "== Geometric-mean speed-up of fastconv (baseline time / fastconv time)"


def geomean(values):
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summary(rows, suites, baselines):
    """Geometric-mean speed-up of fastconv over each baseline, per suite and mode, with the
    worst case."""
    baselines = present(rows, list(baselines) + list(PEERS) + [FILTER2D_BWD_NAME], "speedup")
    header = ["suite", "mode"] + [f"{b}/fastconv geomean" for b in baselines]
    body = []
    for suite in suites + ["all"]:
        for mode in MODES:
            sel = [r for r in rows if r["mode"] == mode and suite in ("all", r["suite"])]
            cells = [suite, mode]
            for b in baselines:
                vals = [r["speedup"][b] for r in sel if b in r["speedup"]]
                g = geomean(vals)
                worst = f", min {min(vals):.2f}x" if len(vals) > 1 else ""
                cells.append(f"{g:.2f}x ({len(vals)} cases{worst})" if g else "-")
            body.append(cells)
    return header, body


def report(rows, suites, torch_names, markdown=False):
    render = render_markdown if markdown else render_text
    parts = []
    for suite in suites:
        for mode in MODES:
            sel = [r for r in rows if r["suite"] == suite and r["mode"] == mode]
            if not sel:
                continue
            reason = SUITES[suite].reason
            title = f"{suite}, {mode}: {reason}"
            parts.append(("### " if markdown else "== ") + title)
            parts.append(render(*table(sel, torch_names)))
            parts.append("")
    if len(suites) > 1 or markdown:
        parts.append(("### " if markdown else "== ") + SUMMARY_TITLE.lstrip("= "))
        parts.append(render(*summary(rows, suites, torch_names + ["naive"])))
    return "\n".join(parts) + "\n"


def write_markdown(path, rows, meta, torch_names):
    with open(path, "w") as f:
        f.write(f"fastconv benchmarks, {meta['date']}: {meta['gpu'] or meta['cpu_model']}, ")
        f.write(f"{meta['threads']} threads, {meta['dtype']}, torch {meta['torch']}, peak ")
        f.write(f"{fmt_num(meta['peak_gflops'], '.0f')} GFLOP/s ({meta['peak_formula']}).")
        peers = ", ".join(f"{k} ({v})" for k, v in meta.get("peers", {}).items())
        f.write(f" Image-filtering peers: {peers}.\n\n" if peers else "\n\n")
        f.write(report(rows, meta["suites"], torch_names, markdown=True))


def write_plot(path, rows, torch_names, meta):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys((r["suite"], r["case"]) for r in rows))
    sweep = [r for r in rows if r["suite"] == "sweep"]
    fig = plt.figure(figsize=(15, max(6.0, 0.32 * len(cases) + 2)))
    grid = fig.add_gridspec(2, 2 if sweep else 1, width_ratios=[1.2, 1] if sweep else None)
    ax = fig.add_subplot(grid[:, 0])
    series = [(mode, tuple(torch_names), f"{mode} vs torch") for mode in MODES]
    if any("cv2.filter2D" in r["speedup"] for r in rows):
        series.append(("fwd", ("cv2.filter2D",), "fwd vs cv2.filter2D"))
    height = 0.8 / len(series)
    colors = ("tab:blue", "tab:orange", "tab:green")
    for k, ((mode, names, label), color) in enumerate(zip(series, colors)):
        ys, vals = [], []
        for i, key in enumerate(cases):
            row = next(r for r in rows if (r["suite"], r["case"]) == key and r["mode"] == mode)
            # against the fastest configuration measured (cudnn.benchmark on or off)
            best = [row["speedup"][n] for n in names if n in row["speedup"]]
            if best:
                ys.append(i + (k - (len(series) - 1) / 2) * height)
                vals.append(min(best))
        ax.barh(ys, vals, height=height, color=color, label=label)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(cases)))
    ax.set_yticklabels([f"{s}: {c}" for s, c in cases], fontsize=8)
    ax.set_ylim(len(cases) - 0.5, -0.5)  # first case on top
    ax.set_xlabel("speed-up (baseline time / fastconv time, log scale)")
    ax.set_title(f"fastconv vs torch.nn.functional.conv2d, {meta['device_name']}, {meta['dtype']}")
    ax.legend(loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)

    for panel, (prefix, xlabel, xkey) in enumerate(
        (
            ("img", "image size (pixels per side), 3x3 kernel", "H"),
            ("k", "kernel size, 512^2 image", "R"),
        )
    ):
        if not sweep:
            break
        ax = fig.add_subplot(grid[panel, 1])
        for mode, style in zip(MODES, ("-", "--")):
            sel = [r for r in sweep if r["mode"] == mode and r["case"].startswith(prefix)]
            for name, color in (("fastconv", "tab:green"), ("torch", "tab:red"), ("naive", "gray")):
                pts = [
                    (r["params"][xkey], r["timings"][name]["ms"])
                    for r in sel
                    if name in r["timings"]
                ]
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", color=color, label=f"{name} {mode}")
        ax.set_xscale("log", base=2)
        sizes = sorted({r["params"][xkey] for r in sweep if r["case"].startswith(prefix)})
        ax.set_xticks(sizes, [str(v) for v in sizes])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("time per call (ms)")
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- command line ---------------------------------------------------------------------------


def warn_busy(fraction, verb):
    if fraction is not None and fraction > 0.1:
        print(
            f"warning: other processes {verb} {100 * fraction:.0f}% of the CPUs busy; "
            "multi-threaded timings, torch's especially, are inflated",
            flush=True,
        )


def parse_args(argv):
    p = argparse.ArgumentParser(prog="fastconv-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--suite", default=",".join(SUITES), help="comma list of " + ",".join(SUITES))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--json", default=None, help="default benchmarks/results/<device>/results.json")
    p.add_argument("--plot", default=None, help="default benchmarks/results/<device>/speedup.png")
    p.add_argument("--quick", action="store_true", help="2-3 cases per suite, short timing")
    p.add_argument("--peak", type=float, default=None, help="device peak GFLOP/s (override)")
    p.add_argument(
        "--min-run-time",
        type=float,
        default=None,
        help="seconds per measurement (default 0.2, 0.05 with --quick)",
    )
    args = p.parse_args(argv)
    if args.dtype == "tf32" and args.device != "cuda":
        p.error("--dtype tf32 needs --device cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA device")
    args.suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        p.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    if args.min_run_time is None:
        args.min_run_time = 0.05 if args.quick else 0.2
    return args


# Suites whose rows also report each implementation's peak extra memory (one cold call in
# a fresh process: benchmarks/memory.py), the dense layers' workspace question.
MEMORY_SUITES = ("dense",)


def extra_mb(suite, case, impl, mode, args, threads):
    n = memory.extra_bytes(suite, case, impl, mode, args.dtype, threads)
    return None if n is None else n / 2**20


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    threads = args.threads
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    dtype = DTYPES[args.dtype]
    if args.device == "cuda":
        gpu = torch.cuda.get_device_name()
        device_name = slugify(gpu)
        # torch convolves float32 in TF32 by default on CUDA; plain float32 means real fp32.
        torch.backends.cuda.matmul.allow_tf32 = args.dtype == "tf32"
        torch.backends.cudnn.allow_tf32 = args.dtype == "tf32"
        peak, peak_how = gpu_peak_gflops(gpu, args.dtype)
    else:
        gpu, device_name = None, "cpu"
        peak, peak_how = cpu_peak_gflops(threads, args.dtype)
    if args.peak is not None:
        peak, peak_how = args.peak, "--peak"
    # --quick keeps its results apart so that it never overwrites a full run's.
    out_dir = os.path.join(RESULTS_DIR, device_name, "quick" if args.quick else "")
    json_path = args.json or os.path.join(out_dir, "results.json")
    plot_path = args.plot or os.path.join(out_dir, "speedup.png")
    md_path = os.path.join(os.path.dirname(os.path.abspath(json_path)), "results.md")

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "fastconv": fastconv.__version__,
        "cpu_isa": fastconv.cpu_isa(),
        "fastconv_cuda": fastconv.has_cuda(),
        "python": platform.python_version(),
        "device": args.device,
        "device_name": device_name,
        "cpu_model": cpu_model(),
        "gpu": gpu,
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "peak_gflops": peak,
        "peak_formula": peak_how,
        "min_run_time_s": args.min_run_time,
        "quick": args.quick,
        "suites": args.suites,
        "peers": setup_peers(threads) if args.device == "cpu" else {},
        "fastconv_built": datetime.datetime.fromtimestamp(
            os.path.getmtime(fastconv._ops._C.__file__)
        ).isoformat(timespec="seconds"),
    }
    others_start = others_cpu_seconds()
    time.sleep(0.5)
    meta["others_cpu_at_start"] = others_cpu_fraction(others_start, 0.5)
    warn_busy(meta["others_cpu_at_start"], "are keeping")
    print(
        f"fastconv {meta['fastconv']} ({meta['cpu_isa']}), torch {meta['torch']}, "
        f"{gpu or meta['cpu_model']}, {meta['threads']} threads, {args.dtype}, peak "
        f"{fmt_num(peak, '.0f')} GFLOP/s ({peak_how})",
        flush=True,
    )

    plan = select(args.suites, args.quick)
    torch_names = [name for name, _ in torch_variants(args.device)]
    baselines = torch_names + ["naive"]
    rows = []
    with tqdm(total=sum(len(cases) for _, cases in plan), unit="case", dynamic_ncols=True) as bar:
        for suite, cases in plan:
            for case in cases:
                bar.set_postfix_str(f"{suite.name}: {case.name}")
                timings, status, errors = run_case(case, args.device, dtype, args.min_run_time)
                case_rows = make_rows(suite, case, timings, status, errors, peak)
                if suite.name in MEMORY_SUITES and args.device == "cpu":
                    for r in case_rows:
                        r["extra_mb"] = {
                            name: extra_mb(suite.name, case.name, name, r["mode"], args, threads)
                            for name in ("fastconv", "torch")
                        }
                rows += case_rows
                bar.update()
            bar.write(
                report([r for r in rows if r["suite"] == suite.name], [suite.name], torch_names)
            )

    print(SUMMARY_TITLE + "\n" + render_text(*summary(rows, args.suites, baselines)))
    meta["wall_time_s"] = round(time.perf_counter() - start, 1)
    meta["others_cpu_during_run"] = others_cpu_fraction(others_start, meta["wall_time_s"])
    warn_busy(meta["others_cpu_during_run"], "kept")
    for path in (json_path, plot_path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    write_markdown(md_path, rows, meta, torch_names)
    write_plot(plot_path, rows, torch_names, meta)
    print(f"wrote {json_path}, {md_path}, {plot_path} ({meta['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
