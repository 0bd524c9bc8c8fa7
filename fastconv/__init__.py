"""fastconv: 2-D cross-correlation for PyTorch with its own CPU and CUDA kernels.

It computes exactly what ``torch.nn.functional.conv2d`` computes -- cross-correlation, the
kernel is *not* flipped -- with the same signature, and is differentiable to any order.

    fastconv.conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)
    fastconv.Conv2d(...)          # drop-in nn.Conv2d
    fastconv.convert(model)       # swap every nn.Conv2d of a model in place
    fastconv.corr2d(X, K)         # the textbook's 2-D function
    fastconv.Conv2D(kernel_size)  # the textbook's layer
"""

from . import _fake, reference  # noqa: F401  (_fake registers the shape rules)
from .config import (
    cpu_algorithm,
    cpu_family,
    cpu_has_bf16_kernel,
    cpu_isa,
    get_cpu_algorithm,
    has_cuda,
    output_pool_stats,
    set_cpu_algorithm,
)
from .functional import conv2d, corr2d
from .modules import Conv2D, Conv2d, convert

__all__ = [
    "conv2d",
    "corr2d",
    "Conv2d",
    "Conv2D",
    "convert",
    "reference",
    "has_cuda",
    "cpu_isa",
    "cpu_has_bf16_kernel",
    "cpu_algorithm",
    "cpu_family",
    "set_cpu_algorithm",
    "get_cpu_algorithm",
    "output_pool_stats",
]
__version__ = "0.1.0"
