// The gemv family: 1x1 layers with a handful of output positions (squeeze-excitation layers
// on pooled 1x1 maps, batch 1 to 16), as matrix-vector products that read the weight once
// in place (kernels.h). Either activation layout: positions are gathered into rows where
// the tensor's own rows are not them.
#pragma once

#include "../family.h"

namespace fastconv {
namespace gemv {

FASTCONV_FAMILY_PASSES()

// Whether the family runs g: a 1x1 kernel (any stride, padding, groups).
inline bool applies(const ConvGeometry& g) { return g.R == 1 && g.S == 1; }

}  // namespace gemv
}  // namespace fastconv
