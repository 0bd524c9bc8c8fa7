// The dense_bf16 family: bfloat16 dense layers on CPUs with AVX-512 BF16, straight into
// vdpbf16ps (no float32 copies of input and weight), float32 accumulation, one rounding.
// Forward, and stride-1 grad-input as a forward pass; the other gradients run on dense/ in
// float32 (select.cpp says which pass takes which family).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

#include "../../conv_geometry.h"

namespace fastconv {
namespace dense_bf16 {

// Register tile of the micro-kernel: MR output channels x NR positions.
constexpr int kMR = 6, kNR = 32;

// True when the kernel is built and the CPU runs vdpbf16ps (and FASTCONV_CPU_ISA allows
// AVX-512).
bool available();

// bfloat16 in, bfloat16 out (contiguous NCHW results).
at::Tensor forward(const ConvGeometry& g, const at::Tensor& input, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias);
at::Tensor grad_input(const ConvGeometry& g, const at::Tensor& grad_output,
                      const at::Tensor& weight);

// kernel.cpp: whether this build has the kernel, and one tile of it (see there).
bool built();
void forward_tile(const ConvGeometry& g, const uint16_t* x, const uint32_t* packed_w,
                  const float* bias, float* y, int64_t grp, int64_t k0, int64_t k1, int64_t j0,
                  int64_t j1);

}  // namespace dense_bf16
}  // namespace fastconv
