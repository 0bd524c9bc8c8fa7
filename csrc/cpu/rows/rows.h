// The rows family: plane-by-plane row kernels for one input channel per group (images,
// per-channel filters, depthwise layers on few channels) and grouped layers with few
// channels per group. driver.cpp threads the per-ISA kernels (table.h) over planes.
#pragma once

#include "../family.h"

namespace fastconv {
namespace rows {

FASTCONV_FAMILY_PASSES()
// Both gradients of a one-to-one stride-1 layer in one pass; false (nothing done) where it
// does not apply.
template <typename T>
bool backward_fused(const ConvGeometry& g, const GradInputArgs<T>& di, const GradWeightArgs<T>& dw);

}  // namespace rows
}  // namespace fastconv
