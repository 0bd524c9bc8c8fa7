"""Loads the compiled extension (which registers torch.ops.fastconv.*) and adds what the
tracing machinery needs: fake kernels (shape rules) for torch.compile / torch.export.
Autograd is registered in C++ (csrc/autograd.cpp) at the Autograd dispatch key."""

import contextlib

import torch

try:
    from . import _build_info
except ImportError as e:  # pragma: no cover - only without a build
    raise ImportError(
        "fastconv is not built: run `make build` (or `pip install --no-build-isolation -e .`)"
    ) from e

_torch_version = torch.__version__.split("+")[0]
if _torch_version != _build_info.TORCH_VERSION:
    raise ImportError(
        f"fastconv was built against torch {_build_info.TORCH_VERSION} but torch "
        f"{_torch_version} is installed; rebuild it (`make build`, or "
        "`pip install --no-build-isolation -e .`)"
    )

from . import _C  # noqa: E402  (registers the ops)

ops = torch.ops.fastconv


def has_cuda() -> bool:
    """True when this build carries the CUDA kernels."""
    return bool(_C.with_cuda)


def cpu_isa() -> str:
    """The SIMD instruction set the CPU kernels run with on this machine."""
    return _C.cpu_isa()


_CPU_ALGORITHMS = ("auto", "direct", "fft", "blocked", "winograd")


def set_cpu_algorithm(name: str) -> None:
    """Which CPU algorithm runs a convolution. "auto" (default) picks by cost: FFTs for
    large single-channel kernels (stride 1, dilation 1), channel-blocked loops for depthwise
    layers, Winograd F(2x2, 3x3) for dense 3x3 stride-1 layers, direct loops otherwise.
    "direct" forces direct loops everywhere (row kernels, plain implicit GEMM); "fft",
    "blocked" and "winograd" force theirs wherever they apply (FFT: one channel per group,
    stride 1, dilation 1; blocked: one input and one output channel per group; Winograd:
    groups 1, 3x3, stride 1, dilation 1). Process-wide."""
    if name not in _CPU_ALGORITHMS:
        raise ValueError(f"fastconv: algorithm must be one of {_CPU_ALGORITHMS}, got {name!r}")
    _C.set_cpu_algorithm(_CPU_ALGORITHMS.index(name))


def get_cpu_algorithm() -> str:
    return _CPU_ALGORITHMS[_C.cpu_algorithm()]


@contextlib.contextmanager
def cpu_algorithm(name: str):
    """Context manager form of set_cpu_algorithm; restores the previous setting."""
    previous = get_cpu_algorithm()
    set_cpu_algorithm(name)
    try:
        yield
    finally:
        set_cpu_algorithm(previous)


def _out_size(size, k, pad, stride, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


@torch.library.register_fake("fastconv::conv2d")
def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    # Mirrors csrc/ops.cpp's checks that shape inference depends on; the real kernels
    # run the full set.
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            torch._check(
                t.device == input.device,
                lambda n=name, t=t: (
                    f"fastconv: {n} must be on the same device as input: "
                    f"input is on {input.device}, {n} is on {t.device}"
                ),
            )
            torch._check(
                t.dtype == input.dtype,
                lambda n=name, t=t: (
                    f"fastconv: {n} dtype must match input dtype: "
                    f"input is {input.dtype}, {n} is {t.dtype}"
                ),
            )
    torch._check(input.dim() == 4, lambda: f"fastconv: expected 4-D input, got {input.dim()}-D")
    torch._check(weight.dim() == 4, lambda: f"fastconv: expected 4-D weight, got {weight.dim()}-D")
    torch._check(
        weight.shape[1] * groups == input.shape[1],
        lambda: "fastconv: expected weight.size(1) == in_channels / groups",
    )
    n, _, h, w = input.shape
    k, _, r, s = weight.shape
    p = _out_size(h, r, padding[0], stride[0], dilation[0])
    q = _out_size(w, s, padding[1], stride[1], dilation[1])
    return input.new_empty((n, k, p, q))


@torch.library.register_fake("fastconv::conv2d_backward")
def _conv2d_backward_fake(
    grad_output, input, weight, stride, padding, dilation, groups, output_mask
):
    return (
        input.new_empty(input.shape) if output_mask[0] else None,
        weight.new_empty(weight.shape) if output_mask[1] else None,
        weight.new_empty((weight.shape[0],)) if output_mask[2] else None,
    )
