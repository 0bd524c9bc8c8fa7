// Which CPU kernel family runs each pass of a convolution: the one place that decides, for
// the entry point (entry.cpp) and for tests and benchmarks (fastconv.cpu_family).
#pragma once

#include <ATen/core/ScalarType.h>

#include <string>

#include "../conv_geometry.h"
#include "family.h"

namespace fastconv {

// One name per family, the same for the enum, the folder (csrc/cpu/<name>/), the string
// family_name returns and the cpu_algorithm value that forces it.
enum class CpuFamily {
  kRows,       // plane-by-plane row kernels (rows/)
  kBlocked,    // depthwise, vectorised across channels (blocked/)
  kDense,      // implicit GEMM (dense/)
  kDenseBf16,  // implicit GEMM on vdpbf16ps (dense_bf16/)
  kGrouped,    // few channels per group, groups per vector, channels_last kernels (grouped/)
  kWinograd,   // dense 3x3 stride 1 as Winograd F(2x2, 3x3) GEMMs (winograd/)
  kFft,        // transform path (fft/)
  kGemv,       // 1x1 layers on a few positions as matrix-vector products (gemv/)
};
const char* family_name(CpuFamily f);

// The process-wide choice set with fastconv.set_cpu_algorithm: "auto" (the cost model),
// "plain" (no transform and no channel blocking: rows for one channel per group, dense
// otherwise; "direct" is accepted as its old name), or a family name, which forces that
// family wherever it can run the geometry and leaves the rest to the cost model. Throws
// on an unknown name.
void set_cpu_algorithm(const std::string& name);
std::string cpu_algorithm();

// The family of each pass and the channels_last activations it takes. fused_backward: both
// gradients may come from one pass of the forward family (rows::backward_fused says where
// it applies).
struct CpuPlan {
  CpuFamily forward, grad_input, grad_weight;
  NhwcSupport forward_nhwc, grad_input_nhwc, grad_weight_nhwc;
  bool fused_backward;
};
// channels_last: the results are (conv_memory_format), so passes may run in NHWC in place.
CpuPlan select_cpu_plan(const ConvGeometry& g, at::ScalarType dtype, bool channels_last);

}  // namespace fastconv
