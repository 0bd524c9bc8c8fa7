"""The device a benchmark runs on: its name and its peak GFLOP/s, from /proc/cpuinfo and
cpufreq for CPUs and from NVIDIA's data sheets for GPUs."""

import platform
import re


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
    """A device name as a directory name: "NVIDIA H200" -> "nvidia-h200"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
