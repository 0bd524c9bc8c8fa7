// The blocked family: depthwise layers (groups == in == out channels) vectorised across
// channels, a SIMD vector of channels per task (kernels.h). driver.cpp threads them.
#pragma once

#include "../family.h"

namespace fastconv {
namespace blocked {

FASTCONV_FAMILY_PASSES()

// Positions of the zero-bordered block a task stages: every input position the output
// reads, padding included ((P-1)*stride + (R-1)*dil + 1 rows, the same for columns).
inline int64_t staged_positions(const ConvGeometry& g) {
  return ((g.P - 1) * g.stride_h + (g.R - 1) * g.dil_h + 1) *
         ((g.Q - 1) * g.stride_w + (g.S - 1) * g.dil_w + 1);
}

}  // namespace blocked
}  // namespace fastconv
