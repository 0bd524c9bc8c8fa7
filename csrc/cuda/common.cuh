// The tuned CUDA tier: entry points that csrc/cuda/conv2d.cu dispatches to. Each takes
// contiguous tensors on the current device (output already allocated) and returns false,
// having launched nothing, where its kernel does not cover the geometry or dtype; the
// caller then runs the reference tier, so a false return is never an error.
#pragma once

#include <ATen/core/Tensor.h>

#include "../conv_geometry.h"

namespace fastconv {

// Accumulator type of the CUDA kernels: float for float, half and bfloat16; double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

// csrc/cuda/direct.cu: shared-memory tiled direct kernels, one channel per group
// (groups == C). `bias` may be undefined.
bool direct_fwd_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w,
                     const at::Tensor& bias, at::Tensor& y);
// Stride 1 only (the flipped-kernel forward); strided grad-input stays on the reference.
bool direct_dgrad_cuda(const ConvGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                       at::Tensor& gx);
// Deterministic: per-block partial sums in a workspace, then a fixed-order reduction.
bool direct_wgrad_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                       at::Tensor& gw);

// csrc/cuda/implicit_gemm.cu: tensor-core implicit GEMM (nvcuda::wmma) for dense layers
// (C/groups > 1) in float16, bfloat16, and float32 as TF32 when torch allows it for
// convolutions (torch.backends.cudnn.allow_tf32), on compute capability 8.0 or newer.
bool igemm_fwd_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& bias, at::Tensor& y);
bool igemm_dgrad_cuda(const ConvGeometry& g, const at::Tensor& gy, const at::Tensor& w,
                      at::Tensor& gx);
// Deterministic split-K: float32 partials per split in a workspace, summed in a fixed order.
bool igemm_wgrad_cuda(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& gy,
                      at::Tensor& gw);

}  // namespace fastconv
