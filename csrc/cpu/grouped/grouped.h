// The grouped family: grouped layers with few channels per group (ResNeXt, RegNet) on
// channels_last activations, V / (C/groups) groups per vector (kernels.h).
#pragma once

#include "../family.h"

namespace fastconv {
namespace grouped {

FASTCONV_FAMILY_PASSES()

// Whether the family runs g with vectors of `vec` lanes: groups of the kernels' widths (2,
// 4, 8, 16, 24 channels) that divide a vector of vec lanes or fill two or three (16 and 24
// float32 channels on AVX2), with as many output as input channels.
inline bool applies(const ConvGeometry& g, int vec) {
  const int64_t gw = g.C_per_group();
  const bool width = gw == 2 || gw == 4 || gw == 8 || gw == 16 || gw == 24;
  return g.groups > 1 && width && gw == g.K_per_group() &&
         (vec % gw == 0 || (gw % vec == 0 && gw <= 3 * vec));
}

}  // namespace grouped
}  // namespace fastconv
