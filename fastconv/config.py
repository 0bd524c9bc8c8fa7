"""What this build and machine run, and the choice of CPU kernel family."""

import contextlib

from . import _loader

_C = _loader._C

# cpu_algorithm values: "auto" (the cost model), "plain" (no transform and no channel
# blocking: rows for one channel per group, dense otherwise; "direct" is its old name), or
# a family, forced wherever it can run the geometry.
CPU_ALGORITHMS = (
    "auto",
    "plain",
    "direct",
    "rows",
    "blocked",
    "dense",
    "winograd",
    "fft",
    "grouped",
    "gemv",
)
CPU_FAMILIES = ("rows", "blocked", "dense", "dense_bf16", "winograd", "fft", "grouped", "gemv")


def has_cuda() -> bool:
    """True when this build carries the CUDA kernels."""
    return bool(_C.with_cuda)


def cpu_isa() -> str:
    """The SIMD instruction set the CPU kernels run with on this machine ("avx512", "avx2"
    or "base"; FASTCONV_CPU_ISA caps it)."""
    return _C.cpu_isa()


def cpu_has_bf16_kernel() -> bool:
    """True when bfloat16 dense layers run on the AVX-512 BF16 kernel on this CPU."""
    return bool(_C.cpu_has_bf16_kernel())


def output_pool_stats() -> tuple[int, int]:
    """(bytes, reuses) of the CPU output pool: outputs of 1 MB and more reuse the memory of
    earlier ones that were freed, up to FASTCONV_OUTPUT_POOL_MB in all (default 256, 0 turns
    it off), rather than faulting in fresh pages. bytes: freed blocks kept now; reuses:
    outputs that took one."""
    held, reused = _C.output_pool_stats()
    return int(held), int(reused)


def set_cpu_algorithm(name: str) -> None:
    """Which CPU algorithm runs a convolution, process-wide. "auto" (default) picks by cost:
    FFTs for large single-channel kernels (stride 1, dilation 1), channel-blocked loops for
    depthwise layers, Winograd F(2x2, 3x3) for dense 3x3 stride-1 layers, row kernels for
    other one-channel-per-group and few-channel grouped layers, implicit GEMM otherwise.
    "plain" ("direct") turns every transform and the channel blocking off. A family name
    (rows, blocked, dense, winograd, fft, grouped) forces that family wherever it can run
    the geometry (fft: one channel per group, stride 1, dilation 1; blocked: depthwise;
    winograd: groups 1, 3x3, stride 1, undilated or dilated 'same'; grouped: as many input
    as output channels per group, 2, 4, 8, 16 or 24 of them, dividing the SIMD width or
    filling two or three vectors)."""
    if name not in CPU_ALGORITHMS:
        raise ValueError(f"fastconv: algorithm must be one of {CPU_ALGORITHMS}, got {name!r}")
    _C.set_cpu_algorithm(name)


def get_cpu_algorithm() -> str:
    return _C.cpu_algorithm()


@contextlib.contextmanager
def cpu_algorithm(name: str):
    """Context manager form of set_cpu_algorithm; restores the previous setting."""
    previous = get_cpu_algorithm()
    set_cpu_algorithm(name)
    try:
        yield
    finally:
        set_cpu_algorithm(previous)


def _pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def cpu_family(input, weight, stride=1, padding=0, dilation=1, groups=1, pass_="forward"):
    """The CPU kernel family fastconv.conv2d runs for these arguments under the current
    cpu_algorithm setting, for one pass: "forward", "grad_input" or "grad_weight". One of
    CPU_FAMILIES. padding is an int or a pair (not 'same')."""
    passes = ("forward", "grad_input", "grad_weight")
    if pass_ not in passes:
        raise ValueError(f"fastconv.cpu_family: pass_ must be one of {passes}, got {pass_!r}")
    families = _C.cpu_families(
        input, weight, _pair(stride), _pair(padding), _pair(dilation), groups
    )
    return families[passes.index(pass_)]
