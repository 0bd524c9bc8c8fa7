// The grouped-layer kernels of one instruction set (kernels.h), as the driver calls them:
// channels_last activations, C/groups = K/groups dividing the vector width.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../../conv_geometry.h"

namespace fastconv {

// The grad-weight's bands of output rows: at least kGroupedWgradBand positions (every tap
// of a band re-reads its rows of x and grad_output from cache rather than from memory);
// band b of the batch is image b / per_image, rows from b % per_image * rows.
constexpr int64_t kGroupedWgradBand = 64;
struct GroupedWgradBands {
  int64_t rows, per_image, count;
};
inline GroupedWgradBands grouped_wgrad_bands(const ConvGeometry& g) {
  const int64_t rows = std::max<int64_t>(1, std::min(g.P, (kGroupedWgradBand + g.Q - 1) / g.Q));
  const int64_t per_image = (g.P + rows - 1) / rows;
  return {rows, per_image, g.N * per_image};
}

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
  // Adds to acc[tap][c'][k] (rows ld apart), channel vectors [v0, v1), every tap, the weight
  // gradient summed over output row bands [b0, b1) (grouped_wgrad_bands) in a fixed order.
  void (*grad_weight_tile)(const ConvGeometry& g, const T* x, const T* gy, T* acc, int64_t ld,
                           int64_t v0, int64_t v1, int64_t b0, int64_t b1);
};

}  // namespace fastconv
