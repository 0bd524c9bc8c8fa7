// The Winograd F(2x2, 3x3) kernels of one instruction set, as the driver (driver.cpp)
// calls them: dense 3x3 stride-1 layers, groups 1.
#pragma once

#include <cstdint>

#include "../../conv_geometry.h"

namespace fastconv {

// Padding of each of the 16 planes of a Winograd buffer: planes a power of two apart put
// all 16 accesses of one tile in one cache set.
constexpr int64_t kWinoPad = 16;

// Buffers hold 16 planes, one per transformed position xi; each plane is padded by kWinoPad
// elements, e.g. the packed weight has planes of round_up(K, kDenseMR) * C + kWinoPad values.
template <typename T>
struct WinogradKernels {
  // Transformed weight of output channels [m0, m1) into the [16][round_up(K, MR)][C]
  // matrix (rows past K are never read), from a contiguous or (w_cl) channels_last weight.
  void (*pack_weight)(const ConvGeometry& g, const T* w, bool w_cl, T* packed, int64_t m0,
                      int64_t m1);
  // Output tiles [t0, t1) of the whole batch (2x2 each, image by image, row by row).
  void (*forward_tiles)(const ConvGeometry& g, const T* x, const T* packed_u, const T* bias, T* y,
                        int64_t t0, int64_t t1);
  // Grad-weight: du[16][C * K + kWinoPad] = transformed products over every tile for input
  // channels [c0, c1); then gw (K x C x 3 x 3) for input channels [c0, c1) from the
  // finished du.
  void (*grad_weight_block)(const ConvGeometry& g, const T* x, const T* gy, int64_t c0, int64_t c1,
                            T* du);
  void (*grad_weight_finish)(const ConvGeometry& g, const T* du, T* gw, int64_t c0, int64_t c1);

  // Channels_last (nhwc.h). The transformed weight of output-channel panels [kp0, kp1) as
  // [16][K / NR][C][NR] panels (NR = the dense family's nhwc_lanes(K)), from a contiguous
  // or (w_cl) channels_last weight.
  void (*nhwc_pack_weight)(const ConvGeometry& g, const T* w, bool w_cl, T* panels, int64_t kp0,
                           int64_t kp1);
  // Output tiles [t0, t1) of the whole batch.
  void (*nhwc_forward_tiles)(const ConvGeometry& g, const T* x, const T* panels, const T* bias,
                             T* y, int64_t t0, int64_t t1);
  // du[16][K * C + kWinoPad] ([xi][k][c]) for input channels [c0, c1) over every tile; then
  // gw (channels_last [K][3][3][C]) for output channels [k0, k1).
  void (*nhwc_grad_weight_block)(const ConvGeometry& g, const T* x, const T* gy, int64_t c0,
                                 int64_t c1, T* du);
  void (*nhwc_grad_weight_finish)(const ConvGeometry& g, const T* du, T* gw, int64_t k0,
                                  int64_t k1);
};

}  // namespace fastconv
