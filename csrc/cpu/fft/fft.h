// The fft family: one input channel per group, stride 1, dilation 1, as a pointwise
// product of 2-D real FFTs, for kernels large enough that O(L log L) per pixel beats
// O(R*S) per pixel (fft.cpp).
#pragma once

#include "../family.h"

namespace fastconv {
namespace fft {

// Whether the family can run g (stride 1, dilation 1, one channel per group, non-empty).
bool applies(const ConvGeometry& g);
// Points of the transform grid (L1 x L2, each the next 2*3*5-smooth size of the padded
// plane), for the cost model (select.cpp).
int64_t grid_points(const ConvGeometry& g);

// Outputs are fully overwritten; operands contiguous NCHW.
FASTCONV_FAMILY_PASSES()

}  // namespace fft
}  // namespace fastconv
