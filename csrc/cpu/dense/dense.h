// The dense family: implicit GEMM on packed tiles for layers with several channels per
// group (kernels.h). driver.cpp cuts the GEMMs into tasks.
#pragma once

#include "../family.h"

namespace fastconv {
namespace dense {

FASTCONV_FAMILY_PASSES()

}  // namespace dense
}  // namespace fastconv
