"""Shape rules shared by the fake kernels (torch.compile / torch.export) and the benchmarks:
the same formulas as csrc/conv_geometry.h and csrc/ops/schema.cpp."""

import torch
from torch._prims_common import suggest_memory_format


def conv_out_size(size, kernel, padding, stride, dilation):
    """Output length of one spatial dimension of a convolution; 0 when the dilated kernel
    does not fit the padded input."""
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * padding
    return 0 if padded < span else (padded - span) // stride + 1


def conv_memory_format(input, weight):
    """The memory format of a convolution's output, grad_input and grad_weight, as
    F.conv2d gives them: channels_last when the input or the weight suggests it (size-1
    dimensions count as either), except float64 on CUDA."""
    if input.device.type == "cuda" and input.dtype == torch.float64:
        return torch.contiguous_format
    cl = torch.channels_last
    if suggest_memory_format(input) == cl or suggest_memory_format(weight) == cl:
        return cl
    return torch.contiguous_format
