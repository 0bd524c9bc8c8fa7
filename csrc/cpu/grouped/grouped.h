// The grouped family: grouped layers with few channels per group (ResNeXt, RegNet) on
// channels_last activations, V / (C/groups) groups per vector (kernels.h).
#pragma once

#include "../family.h"

namespace fastconv {
namespace grouped {

FASTCONV_FAMILY_PASSES()

// Whether the family runs g with vectors of `vec` lanes: C/groups == K/groups, at least 2,
// dividing the vector width.
// Groups of 2 to 16 channels (the kernels' widths) that divide a vector of vec lanes or fill
// two (16 float32 channels on AVX2), with as many output as input channels.
inline bool applies(const ConvGeometry& g, int vec) {
  const int64_t gw = g.C_per_group();
  return g.groups > 1 && gw >= 2 && gw <= 16 && gw == g.K_per_group() &&
         (vec % gw == 0 || gw == 2 * vec);
}

}  // namespace grouped
}  // namespace fastconv
