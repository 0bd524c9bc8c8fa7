// Dense forward in bfloat16 on CPUs with AVX-512 BF16 (csrc/cpu/dense_bf16.cpp).
#pragma once

#include <cstdint>

#include "../conv_geometry.h"

namespace fastconv {

// True when this build has the kernel and the CPU runs vdpbf16ps.
bool dense_bf16_available();

// y (float32, contiguous N x K x P x Q) = bias + W * im2col(x) for bfloat16 x and w (raw
// 16-bit patterns, contiguous NCHW), accumulated in float32.
void dense_forward_bf16(const ConvGeometry& g, const uint16_t* x, const uint16_t* w,
                        const float* bias, float* y);

}  // namespace fastconv
