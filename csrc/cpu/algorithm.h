// Which CPU kernel family runs a convolution: the one place that decides, for the driver
// (conv2d.cpp) and for tests and benchmarks (fastconv.cpu_algorithm_for).
#pragma once

#include <ATen/core/ScalarType.h>

#include "../conv_geometry.h"

namespace fastconv {

// A forced choice for the one-channel-per-group family (tests, benchmarks), or the cost
// model's. Process-wide; set from Python with fastconv.set_cpu_algorithm. A forced family
// that cannot run a geometry falls back to the cost model.
enum class CpuAlgorithm { kAuto = 0, kDirect = 1, kFft = 2, kBlocked = 3 };
void set_cpu_algorithm(CpuAlgorithm a);
CpuAlgorithm cpu_algorithm();

enum class CpuFamily {
  kDense,      // implicit GEMM (dense.h)
  kDenseBf16,  // implicit GEMM on vdpbf16ps (dense_bf16.cpp)
  kRows,       // one plane at a time, vectorised along rows (direct.h)
  kBlocked,    // depthwise, vectorised across channels (blocked.h)
  kFft,        // transform path (fft.cpp)
};
CpuFamily cpu_family(const ConvGeometry& g, at::ScalarType dtype);
const char* family_name(CpuFamily f);

}  // namespace fastconv
