// Declarations shared by the op registration, the autograd wiring and the backends.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

#include "../conv_geometry.h"

namespace fastconv {

using at::IntArrayRef;
using at::Tensor;
using OptTensor = std::optional<Tensor>;
// d_input, d_weight, d_bias; each empty where output_mask says it is not wanted.
using Grads = std::tuple<OptTensor, OptTensor, OptTensor>;

// Validates every argument of a forward call (ranks, dtypes, devices, groups, sizes,
// stride/padding/dilation) with messages that name the argument, and returns the
// geometry. Every backend calls it first, so the raw ops are as safe as the Python API.
ConvGeometry check_conv2d_args(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                               IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                               int64_t groups);

// The same for the backward op, plus the shape of grad_output.
ConvGeometry check_conv2d_backward_args(const Tensor& grad_output, const Tensor& input,
                                        const Tensor& weight, IntArrayRef stride,
                                        IntArrayRef padding, IntArrayRef dilation, int64_t groups);

// The memory format of the results (output, grad_input, grad_weight), as F.conv2d gives
// them: channels_last when the input or the weight suggests it (Tensor::suggest_memory_format,
// so size-1 dimensions count as either), except float64 on CUDA (cuDNN's rule). Mirrored by
// fastconv/shapes.py for the fake kernels.
at::MemoryFormat conv_memory_format(const Tensor& input, const Tensor& weight);
// t (4-D) in that format, with the strides torch gives it: a layout copy where t is in the
// other order; where size-1 dimensions make both orders the same memory, a view with
// channels_last's strides (as the fake kernels' torch.empty(memory_format=...) has them).
Tensor in_conv_format(const Tensor& t, at::MemoryFormat format);

// The ops called through the C++ dispatcher (autograd, autocast and tracing keys apply):
// how autograd, autocast and the Python fast path call them (csrc/ops.cpp).
Tensor call_conv2d(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                   IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups);
Grads call_conv2d_backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                           IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                           int64_t groups, std::array<bool, 3> mask);

// Backend entry points (csrc/cpu/entry.cpp, csrc/cuda/entry.cu).
Tensor conv2d_fwd_cpu(const Tensor& input, const Tensor& weight, const OptTensor& bias,
                      IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                      int64_t groups);
Grads conv2d_bwd_cpu(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                     IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
                     std::array<bool, 3> output_mask);

}  // namespace fastconv
