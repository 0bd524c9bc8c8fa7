// The channel-blocked depthwise kernels of one instruction set, as the driver (driver.cpp)
// calls them: one call handles `vec` channels (one SIMD vector) of one image.
#pragma once

#include <cstdint>

#include "../../conv_geometry.h"

namespace fastconv {

template <typename T>
struct BlockedKernels {
  // Channels [c0, c0 + vec) of one image; x/y/gy/gx point at the image (all NCHW or, nhwc,
  // all channels_last), w at the whole [C][R*S] weight, bias at [C] or null.
  void (*forward)(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, bool nhwc,
                  int64_t c0);
  // Channels_last forward of output rows [p0, p1) of one image, every channel.
  void (*forward_nhwc_rows)(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                            int64_t p0, int64_t p1);
  // Channels_last forward of output rows [p0, p1) of one image, every channel, read in
  // place (nothing staged).
  void (*forward_nhwc_direct)(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                              int64_t p0, int64_t p1);
  // Grad-input of any stride (the driver runs stride 1 as forward).
  void (*grad_input)(const ConvGeometry& g, const T* gy, const T* w, T* gx, bool nhwc, int64_t c0);
  // Channels_last grad-input of a strided layer, input rows [h0, h1) of one image, every
  // channel, written in place (nothing staged or zeroed).
  void (*grad_input_nhwc_direct)(const ConvGeometry& g, const T* gy, const T* w, T* gx, int64_t h0,
                                 int64_t h1);
  // This image's grad-weight for the block: partial[r*S + s][vec].
  void (*grad_weight)(const ConvGeometry& g, const T* x, const T* gy, T* partial, bool nhwc,
                      int64_t c0);
  // Channels_last: the grad-weight of output rows [p0, p1) of one image, every channel,
  // added into partial[C / vec][r*S + s][vec].
  void (*grad_weight_nhwc_rows)(const ConvGeometry& g, const T* x, const T* gy, T* partial,
                                int64_t p0, int64_t p1);
  // The same, reading x and grad_output in place (nothing staged).
  void (*grad_weight_nhwc_direct)(const ConvGeometry& g, const T* x, const T* gy, T* partial,
                                  int64_t p0, int64_t p1);
};

}  // namespace fastconv
