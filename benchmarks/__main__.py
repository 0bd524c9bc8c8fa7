"""Benchmark fastconv against torch.nn.functional.conv2d, the textbook's naive loop and,
for image filtering on the CPU, cv2.filter2D and scipy (ndimage.correlate, signal.correlate).

    python -m benchmarks                      # default suites, CPU, float32 (`make bench`)
    python -m benchmarks --quick              # a few cases, short timing
    python -m benchmarks --device cuda --dtype tf32 --suite dense,depthwise
    python -m benchmarks --suite models --models resnet18,mobilenet_v2
    python -m benchmarks --suite zoo --zoo-limit 50

For every case (see benchmarks/cases.py) and mode (forward; forward+backward w.r.t. input,
weight and bias) it times each implementation with torch.utils.benchmark's
blocked_autorange, and reports median time, speed-up over each baseline (baseline time /
fastconv time), GFLOP/s, percent of the device's peak and the max abs error against a
float64 reference. The image libraries are forward-only and not differentiable; the
fwd+bwd rows compare fastconv's forward+backward with 3x their forward
("3x cv2.filter2D"). The models suite times whole torchvision models converted with
fastconv.convert against the originals (benchmarks/models.py); the zoo suite, not run by
default, every distinct conv layer of torchvision's models (benchmarks/zoo.py).
Results go to a terminal table, results.json, results.md and speedup.png (models.png)
under benchmarks/results/<device>/ (cpu-avx2/ on a CPU without AVX-512, and -<dtype>
added for dtypes but float32) unless --json (the plots then go beside it) / --plot say
otherwise; --quick runs write to .../quick/, zoo runs (results.json, results.md, zoo.png)
to .../zoo/.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import sys
import time

import torch
from tqdm import tqdm

import fastconv

from . import models, report, zoo
from .cases import SUITES, select
from .inputs import DTYPES
from .peak import cpu_flop_per_cycle, cpu_model, cpu_peak_gflops, gpu_peak_gflops, slugify
from .peers import setup_peers
from .report import SUMMARY_TITLE, fmt_num, render_text
from .runner import MEMORY_SUITES, add_extra_memory, make_rows, run_case, torch_variants
from .timing import others_cpu_fraction, others_cpu_seconds, warn_busy

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# Suites beyond the convolution cases; the zoo takes long, so it runs only when named.
OTHER_SUITES = ("models", "zoo")
DEFAULT_SUITES = list(SUITES) + ["models"]
ALL_SUITES = list(SUITES) + list(OTHER_SUITES)


def _comma_list(text):
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="fastconv-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument(
        "--suite",
        default=",".join(DEFAULT_SUITES),
        help=f"comma list of {','.join(ALL_SUITES)} (default: all but zoo)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--json", default=None, help="default benchmarks/results/<device>/results.json")
    p.add_argument("--plot", default=None, help="default speedup.png beside the --json file")
    p.add_argument("--quick", action="store_true", help="2-3 cases per suite, short timing")
    p.add_argument("--peak", type=float, default=None, help="device peak GFLOP/s (override)")
    p.add_argument(
        "--min-run-time",
        type=float,
        default=None,
        help=f"seconds per measurement (default 0.2, 0.05 with --quick; zoo {zoo.MIN_RUN_TIME})",
    )
    p.add_argument(
        "--models",
        default=None,
        help=f"models suite: comma list of {','.join(models.MODEL_NAMES)} "
        f"(default: all; {','.join(models.QUICK_MODELS)} with --quick)",
    )
    p.add_argument(
        "--model-modes",
        default=None,
        help=f"models suite: comma list of {','.join(models.MODES)} "
        f"(default: all; {','.join(models.QUICK_MODES)} with --quick)",
    )
    p.add_argument(
        "--model-reps",
        type=int,
        default=None,
        help="models suite: timed repetitions per model and mode (default: as many as fit "
        f"the mode's time budget, {models.MIN_REPS}-{models.MAX_REPS})",
    )
    p.add_argument(
        "--zoo-limit",
        type=int,
        default=None,
        help=f"zoo suite: time N layers spread over the list (default: all; "
        f"{zoo.QUICK_LIMIT} with --quick)",
    )
    p.add_argument("--zoo-layers", default=zoo.LAYERS_PATH, help="zoo suite: the layer list")
    p.add_argument(
        "--zoo-collect",
        action="store_true",
        help="rebuild --zoo-layers from torchvision's models first (the zoo suite does so "
        "anyway where the file is missing)",
    )
    args = p.parse_args(argv)
    # Only the committed list is rebuilt where it is missing: another path that does not
    # exist is a typo (or a layer name), not a request to collect every layer into it.
    if (
        args.zoo_layers != zoo.LAYERS_PATH
        and not args.zoo_collect
        and not os.path.exists(args.zoo_layers)
    ):
        p.error(
            f"--zoo-layers: no such layer list {args.zoo_layers!r} (a JSON file as "
            "--zoo-collect writes; add --zoo-collect to create it)"
        )
    if args.dtype == "tf32" and args.device != "cuda":
        p.error("--dtype tf32 needs --device cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA device")
    args.suites = _comma_list(args.suite)
    unknown = [s for s in args.suites if s not in ALL_SUITES]
    if unknown:
        p.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(ALL_SUITES)}")
    args.zoo_min_run_time = args.min_run_time or zoo.MIN_RUN_TIME
    if args.min_run_time is None:
        args.min_run_time = 0.05 if args.quick else 0.2
    quick_models, quick_modes = models.QUICK_MODELS, models.QUICK_MODES
    args.models = _comma_list(args.models) if args.models else None
    args.models = args.models or list(quick_models if args.quick else models.MODEL_NAMES)
    args.model_modes = _comma_list(args.model_modes) if args.model_modes else None
    args.model_modes = args.model_modes or list(quick_modes if args.quick else models.MODES)
    for given, known, what in (
        (args.models, models.MODEL_NAMES, "model"),
        (args.model_modes, models.MODES, "model mode"),
    ):
        unknown = [s for s in given if s not in known]
        if unknown:
            p.error(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.zoo_limit is None and args.quick:
        args.zoo_limit = zoo.QUICK_LIMIT
    return args


def _built_at():
    """When the installed extension was built: the newest shared library in the package."""
    libs = glob.glob(os.path.join(os.path.dirname(fastconv.__file__), "*.so"))
    libs += glob.glob(os.path.join(os.path.dirname(fastconv.__file__), "*.pyd"))
    if not libs:
        return None
    stamp = max(os.path.getmtime(lib) for lib in libs)
    return datetime.datetime.fromtimestamp(stamp).isoformat(timespec="seconds")


def run_cases(args, conv_suites, peak, threads, torch_names):
    """The rows of the convolution suites, each suite's table printed as it completes."""
    dtype = DTYPES[args.dtype]
    plan = select(conv_suites, args.quick)
    rows = []
    with tqdm(total=sum(len(cases) for _, cases in plan), unit="case", dynamic_ncols=True) as bar:
        for suite, cases in plan:
            for case in cases:
                bar.set_postfix_str(f"{suite.name}: {case.name}")
                timings, status, errors = run_case(case, args.device, dtype, args.min_run_time)
                case_rows = make_rows(suite, case, timings, status, errors, peak)
                if suite.name in MEMORY_SUITES and args.device == "cpu":
                    add_extra_memory(case_rows, suite.name, case.name, args.dtype, threads)
                rows += case_rows
                bar.update()
            suite_rows = [r for r in rows if r["suite"] == suite.name]
            bar.write(report.report(suite_rows, [suite.name], torch_names))
    return rows


def results_dir(device_name, device, dtype, quick, zoo_run):
    """Where a run's files go without --json. --quick keeps its results apart so that it
    never overwrites a full run's, and so do the zoo, which the default run leaves out,
    every dtype but float32, CPU runs on a narrower SIMD build than AVX-512 (the committed
    cpu/ runs are AVX-512's on a CPU that splits 512-bit operations in two halves, Zen 4;
    an AVX2 machine's go to cpu-avx2/), and AVX-512 on a full 512-bit datapath (Zen 5:
    twice the peak, cpu-512bit/)."""
    isa = fastconv.cpu_isa() if device == "cpu" else "avx512"
    run_name = device_name if isa == "avx512" else f"{device_name}-{isa}"
    if device == "cpu" and isa == "avx512" and cpu_flop_per_cycle("float32") == 64:
        run_name = f"{device_name}-512bit"
    run_name = run_name if dtype == "float32" else f"{run_name}-{dtype}"
    out_dir = os.path.join(RESULTS_DIR, run_name, "quick" if quick else "")
    return os.path.join(out_dir, "zoo" if zoo_run else "")


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    threads = args.threads
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
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
    out_dir = results_dir(device_name, args.device, args.dtype, args.quick, "zoo" in args.suites)
    json_path = args.json or os.path.join(out_dir, "results.json")
    # Plots go beside the JSON unless --plot says otherwise, so that a run with its --json
    # elsewhere leaves the committed plots alone.
    plot_path = args.plot or os.path.join(
        os.path.dirname(os.path.abspath(json_path)), "speedup.png"
    )
    md_path = os.path.join(os.path.dirname(os.path.abspath(json_path)), "results.md")
    plot_dir = os.path.dirname(os.path.abspath(plot_path))

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
        "fastconv_built": _built_at(),
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

    torch_names = [name for name, _ in torch_variants(args.device)]
    conv_suites = [s for s in args.suites if s in SUITES]
    rows = run_cases(args, conv_suites, peak, threads, torch_names) if conv_suites else []
    if conv_suites:
        baselines = torch_names + ["naive"]
        print(SUMMARY_TITLE + "\n" + render_text(*report.summary(rows, conv_suites, baselines)))

    model_rows, zoo_rows = [], []
    if "models" in args.suites and args.dtype not in ("float32", "tf32"):
        # The models run in float32 storage; other dtypes would need their own tolerances.
        print(f"models suite skipped: float32 (or tf32) only, not {args.dtype}")
    elif "models" in args.suites:
        suite_start = time.perf_counter()
        model_rows = models.run(
            args.models,
            args.model_modes,
            args.device,
            reps=args.model_reps,
            budget_scale=models.QUICK_BUDGET_SCALE if args.quick else 1.0,
        )
        meta["models_wall_time_s"] = round(time.perf_counter() - suite_start, 1)
        print(models.report(model_rows), flush=True)
    if args.zoo_collect or ("zoo" in args.suites and not os.path.exists(args.zoo_layers)):
        layers = zoo.collect(progress=True)
        zoo.save_layers(args.zoo_layers, layers)
        print(f"collected {len(layers)} distinct conv layers into {args.zoo_layers}")
    if "zoo" in args.suites:
        suite_start = time.perf_counter()
        layers = zoo.spread(zoo.load_layers(args.zoo_layers), args.zoo_limit)
        zoo_rows = zoo.run(layers, args.device, DTYPES[args.dtype], args.zoo_min_run_time)
        meta["zoo_min_run_time_s"] = args.zoo_min_run_time
        meta["zoo_wall_time_s"] = round(time.perf_counter() - suite_start, 1)
        print(zoo.report(zoo_rows), flush=True)

    meta["wall_time_s"] = round(time.perf_counter() - start, 1)
    meta["others_cpu_during_run"] = others_cpu_fraction(others_start, meta["wall_time_s"])
    warn_busy(meta["others_cpu_during_run"], "kept")
    for path in (json_path, plot_path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "rows": rows + model_rows + zoo_rows}, f, indent=1)
    sections = [models.report(model_rows, markdown=True)] if model_rows else []
    sections += [zoo.report(zoo_rows, markdown=True)] if zoo_rows else []
    report.write_markdown(md_path, rows, meta, torch_names, sections)
    written = [json_path, md_path]
    if rows:
        report.write_plot(plot_path, rows, torch_names, meta)
        written.append(plot_path)
    if model_rows:
        written.append(os.path.join(plot_dir, "models.png"))
        models.write_plot(written[-1], model_rows, meta)
    if zoo_rows:
        written.append(os.path.join(plot_dir, "zoo.png"))
        zoo.write_plot(written[-1], zoo_rows, meta)
    print(f"wrote {', '.join(written)} ({meta['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
