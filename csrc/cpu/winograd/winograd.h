// The Winograd family: dense 3x3 stride-1 layers (groups 1) as Winograd F(2x2, 3x3) GEMMs,
// and dilated "same" 3x3 layers as their d*d undilated phases (conv_geometry.h).
#pragma once

#include "../family.h"

namespace fastconv {
namespace winograd {

FASTCONV_FAMILY_PASSES()

// 2x2 output tiles of the layer (of its phases, when dilated).
inline int64_t output_tiles(const ConvGeometry& g) {
  const ConvGeometry t = g.dil_h > 1 ? dilated_phases(g) : g;
  return t.N * ((t.P + 1) / 2) * ((t.Q + 1) / 2);
}

// Whether the family runs g: 3x3, stride 1, groups 1, undilated or dilated "same".
inline bool applies(const ConvGeometry& g) {
  return g.groups == 1 && g.R == 3 && g.S == 3 && g.unit_stride() &&
         ((g.dil_h == 1 && g.dil_w == 1) || has_dilated_phases(g));
}

}  // namespace winograd
}  // namespace fastconv
