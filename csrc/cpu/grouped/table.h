// The grouped-layer kernels of one instruction set (kernels.h), as the driver calls them:
// channels_last activations, C/groups = K/groups dividing the vector width.
#pragma once

#include <cstdint>

#include "../../conv_geometry.h"

namespace fastconv {

template <typename T>
struct GroupedKernels {
  // Packed weight panels of channel vectors [v0, v1): [vector][tap][c'][V] with lanes over
  // output channels (forward) or (dgrad) input channels; from a contiguous or (w_cl)
  // channels_last weight.
  void (*pack_weight)(const ConvGeometry& g, const T* w, bool w_cl, bool dgrad, T* wp, int64_t v0,
                      int64_t v1);
  // Output positions [j0, j1) of the batch x channel vectors [v0, v1).
  void (*forward_tile)(const ConvGeometry& g, const T* x, const T* wp, const T* bias, T* y,
                       int64_t v0, int64_t v1, int64_t j0, int64_t j1);
  // Grad-input rows [h0, h1) of image n x channel vectors [v0, v1), any stride.
  void (*grad_input_tile)(const ConvGeometry& g, const T* gy, const T* wp, T* gx, int64_t v0,
                          int64_t v1, int64_t n, int64_t h0, int64_t h1);
  // acc[tap][c'][K] for channel vector v, every tap: the weight gradient summed over every
  // position in a fixed order.
  void (*grad_weight_tile)(const ConvGeometry& g, const T* x, const T* gy, T* acc, int64_t v);
};

}  // namespace fastconv
