// Which CPU kernel family runs a convolution: the one place that decides, for the driver
// (conv2d.cpp) and for tests and benchmarks (fastconv.cpu_algorithm_for).
#pragma once

#include <ATen/core/ScalarType.h>

#include "../conv_geometry.h"

namespace fastconv {

// A forced choice (tests, benchmarks), or the cost model's. kDirect: no transforms and no
// channel blocking (row kernels, plain implicit GEMM). Process-wide; set from Python with
// fastconv.set_cpu_algorithm. A forced family that cannot run a geometry falls back to the cost
// model.
enum class CpuAlgorithm { kAuto = 0, kDirect = 1, kFft = 2, kBlocked = 3, kWinograd = 4 };
void set_cpu_algorithm(CpuAlgorithm a);
CpuAlgorithm cpu_algorithm();

enum class CpuFamily {
  kDense,      // implicit GEMM (dense.h)
  kDenseBf16,  // implicit GEMM on vdpbf16ps (dense_bf16.cpp)
  kWinograd,   // dense 3x3 stride 1 as Winograd F(2x2, 3x3) GEMMs (winograd.h)
  kRows,       // one plane at a time, vectorised along rows (direct.h)
  kBlocked,    // depthwise, vectorised across channels (blocked.h)
  kFft,        // transform path (fft.cpp)
};
CpuFamily cpu_family(const ConvGeometry& g, at::ScalarType dtype);
const char* family_name(CpuFamily f);

}  // namespace fastconv
