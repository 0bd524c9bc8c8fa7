"""Fake kernels (shape rules) of the fastconv ops for torch.compile and torch.export.
Autograd is registered in C++ (csrc/ops/autograd.cpp) at the Autograd dispatch key."""

import torch

from . import _loader  # noqa: F401  (the ops must exist first)
from .shapes import conv_memory_format, conv_out_size


def _empty_like_conv(shape, input, weight):
    """A 4-D result in the convolution's memory format (csrc/ops/schema.cpp)."""
    fmt = conv_memory_format(input, weight)
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=fmt)


@torch.library.register_fake("fastconv::conv2d")
def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    # Mirrors csrc/ops/schema.cpp's checks that shape inference depends on; the real
    # kernels run the full set.
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
    p = conv_out_size(h, r, padding[0], stride[0], dilation[0])
    q = conv_out_size(w, s, padding[1], stride[1], dilation[1])
    return _empty_like_conv((n, k, p, q), input, weight)


@torch.library.register_fake("fastconv::conv2d_backward")
def _conv2d_backward_fake(
    grad_output, input, weight, stride, padding, dilation, groups, output_mask
):
    return (
        _empty_like_conv(input.shape, input, weight) if output_mask[0] else None,
        _empty_like_conv(weight.shape, input, weight) if output_mask[1] else None,
        weight.new_empty((weight.shape[0],)) if output_mask[2] else None,
    )
