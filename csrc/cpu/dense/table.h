// The implicit-GEMM kernels of one instruction set, as the driver (driver.cpp) calls them:
// one tile of the GEMM each, single-threaded.
#pragma once

#include <cstdint>

#include "../../conv_geometry.h"

namespace fastconv {

// Rows of the micro-kernel's register tile (gemm.h); its columns are two SIMD vectors.
constexpr int kDenseMR = 6;
// Channels_last tiles (nhwc.h): positions per block of the forward (and the 1x1 grad-input
// run as one) over the packed weight; each slice of a panel serves this many positions.
constexpr int64_t kNhwcPositions = 16 * kDenseMR;
// Where the forward packs the weight slice by slice in its tasks (NhwcWeight::kRawRows):
// blocks of up to 288 positions (a slice's gathered rows, 288 KB in float32, stay in L2),
// at most 4 of them, each packing the weight once more.
constexpr int64_t kNhwcRawRowsPositions = 48 * kDenseMR;
constexpr int64_t kNhwcRawRowsMaxBlocks = 4;
// The weight a channels_last forward tile reads. Packed panels of NR output channels, rows
// in the weight's own [c][tap] order or in [tap][c] order (kernel-row taps need that); or
// the group's raw rows [K/G][R*S*C/G], which the tile packs slice by slice as it reaches
// them (few positions: see forward_nhwc in driver.cpp): of a channels_last (or 1x1) weight,
// [tap][c] (kRawRows), or of a contiguous one, [c][tap] (kRawRowsChannelMajor: slices of
// every tap and a few channels, one run of each row). kRawColumns: a 1x1 layer's weight
// read transposed, [C/G][K/G] for a GEMM with lanes over its K/G (a 1x1 grad-input's
// weight as it is), whose panel rows are runs of its rows, copied slice by slice.
enum class NhwcWeight { kPanels, kPanelsTapMajor, kRawRows, kRawRowsChannelMajor, kRawColumns };
// Whether the tile packs wk's slices itself (raw rows), and whether wk's rows run [tap][c].
inline bool nhwc_raw_rows(NhwcWeight wk) {
  return wk == NhwcWeight::kRawRows || wk == NhwcWeight::kRawRowsChannelMajor ||
         wk == NhwcWeight::kRawColumns;
}
inline bool nhwc_tap_major(NhwcWeight wk) {
  return wk == NhwcWeight::kPanelsTapMajor || wk == NhwcWeight::kRawRows;
}
constexpr int64_t kNhwcDepth = 128;

// The channels_last grad-weight (nhwc.h) copies positions' rows of x at least this far
// apart (512 float32 channels) into one block per panel and chunk before the micro-kernels
// read them, and grad_output's likewise once per chunk where a task serves several panels:
// apart, each position of a chunk is on a page of its own (every step of the micro-kernel
// a TLB miss), and every block of output channels reads the chunk again. x's copy, per
// pass, same process (Zen 4): batch 1 512x14^2 3x3 9.8 -> 5.9 ms, 512x7^2 -> 2048 1.02 ->
// 0.77 ms, batch 8 1024x14^2 -> 256 5.8 -> 4.8 ms; with 256 channels the copy lost 4-7 %
// (docs/measurements.md).
constexpr int64_t kNhwcWgradPackMinRowBytes = 2048;

// Ungrouped channels_last layers with fewer input channels than this (3-channel first
// layers) gather whole kernel rows: with dilation 1 along the width, the S*C values of one
// row of taps are contiguous in NHWC, so the kernels run R taps of S*C values (a 7x7 stem:
// 7 of 21) rather than R*S taps of C (49 of 3, a pass of the micro-kernel's loop per tap
// for three FMAs). Where a row crosses the image's left or right edge it is staged with
// zeros. Ungrouped only: with groups, other groups' channels lie between the runs.
constexpr int64_t kNhwcRowTapsMaxChannels = 8;

// How the channels_last kernels see a layer: `taps` gathered runs of `depth` contiguous
// values per position, `rows` where a run is a whole kernel row (S*C values), else one tap
// (r, s) of a group's C/G channels.
struct NhwcTaps {
  int64_t taps, depth;
  bool rows;
};
inline NhwcTaps kernel_row_taps(const ConvGeometry& g) { return {g.R, g.S * g.C, true}; }
inline bool has_kernel_row_taps(const ConvGeometry& g) { return g.groups == 1 && g.dil_w == 1; }
inline NhwcTaps nhwc_taps(const ConvGeometry& g) {
  if (has_kernel_row_taps(g) && g.C < kNhwcRowTapsMaxChannels) return kernel_row_taps(g);
  return {g.R * g.S, g.C_per_group(), false};
}

// Grad-weight also takes kernel-row taps where a kernel row's run is short (at most this
// many values: lanes over a tap's C channels would fill one to three vectors, so the
// kernel loads about as many vectors as it issues FMAs) and there are at least as many
// output channels to run the lanes over instead. Its slices of the positions also read x
// and grad_output once, where the tap-by-tap kernel reads x once per task (measured in
// docs/measurements.md: MobileNet's 16->96 1x1 on 112x112, 0.42x -> 1.05x torch).
constexpr int64_t kNhwcWgradRowsMaxRun = 48;
inline NhwcTaps nhwc_wgrad_taps(const ConvGeometry& g) {
  if (has_kernel_row_taps(g) && g.K >= g.C && g.S * g.C <= kNhwcWgradRowsMaxRun)
    return kernel_row_taps(g);
  return nhwc_taps(g);
}

template <typename T>
struct DenseKernels {
  // Output channels [k0, k1) (k0 a multiple of MR) of group grp x positions [j0, j1) of the
  // whole batch (j = n*P*Q + p*Q + q; a tile may span images): y = bias + W * im2col(x).
  // The weight is read in place.
  void (*forward_tile)(const ConvGeometry& g, const T* x, const T* w_group, const T* bias_group,
                       T* y, int64_t grp, int64_t k0, int64_t k1, int64_t j0, int64_t j1);
  // gw[k0:k1, j0:j1] (row stride C/G*R*S, group grp) = sum over images [n0, n1) of
  // grad_output * im2col(x)^T, in a fixed order, stored (each block has one tile: no
  // zeroing pass over the whole weight first).
  void (*grad_weight_tile)(const ConvGeometry& g, const T* x, const T* gy, T* gw_group, int64_t grp,
                           int64_t k0, int64_t k1, int64_t j0, int64_t j1, int64_t n0, int64_t n1);
  // gx[images n0:n1, channels c0:c1 of group grp] = col2im(W^T * gy): the strided
  // grad-input.
  void (*grad_input_tile)(const ConvGeometry& g, const T* gy, const T* w, T* gx, int64_t grp,
                          int64_t c0, int64_t c1, int64_t n0, int64_t n1);

  // Channels_last (nhwc.h), the weight packed into panels of NR = nhwc_lanes(n) channels for
  // n channels along the lanes (one, two or four vectors, whichever fills them best).
  int (*nhwc_lanes)(int64_t channels);
  // Rows [0, n) of src (row stride ld, kc columns) as panels of nhwc_lanes(n) rows
  // [n / NR][kc][NR], rows past n zero.
  void (*nhwc_pack_panels)(const T* src, int64_t ld, int64_t n, int64_t kc, T* dst,
                           int64_t lanes_of);
  // Positions [j0, j1) x output-channel panels [kp0, kp1) of group grp (w: the group's
  // weight as wk says; bias the group's or null).
  void (*nhwc_forward_tile)(const ConvGeometry& g, const T* x, const T* w, NhwcWeight wk,
                            const T* bias, T* y, int64_t grp, int64_t kp0, int64_t kp1, int64_t j0,
                            int64_t j1);
  // Grad-input's panels [R*S][C/G / NR][K/G][NR] of group grp for its output channels
  // [k0, k1), from a [K][C/G][R][S] weight or (w_cl) a channels_last one (lanes past C/G
  // zeroed).
  void (*nhwc_pack_grad_input_weight)(const ConvGeometry& g, const T* w, bool w_cl, T* dst,
                                      int64_t grp, int64_t k0, int64_t k1);
  // Grad-input rows [h0, h1) of image n x input-channel panels [cp0, cp1) of group grp, any
  // stride (w: the group's [R*S][C/G / NR][K/G][NR] panels).
  void (*nhwc_grad_input_tile)(const ConvGeometry& g, const T* gy, const T* w_packed, T* gx,
                               int64_t grp, int64_t cp0, int64_t cp1, int64_t n, int64_t h0,
                               int64_t h1);
  // gw[k][r][s][c] (channels_last) of tap r*S + s, group grp, output channels [k0, k1) of
  // the group, input-channel panels [cp0, cp1) (of nhwc_lanes(C/G) channels): the sum over
  // positions [j0, j1) of the batch in a fixed order, stored (not for kernel-row taps).
  void (*nhwc_grad_weight_tile)(const ConvGeometry& g, const T* x, const T* gy, T* gw, int64_t grp,
                                int64_t tap, int64_t cp0, int64_t cp1, int64_t k0, int64_t k1,
                                int64_t j0, int64_t j1);
  // Kernel-row taps (nhwc_wgrad_taps rows): gwt[t*S*C + u][k] = the sum over positions [j0, j1)
  // of the batch of tap t's run value u times grad_output channel k, every tap and channel.
  void (*nhwc_grad_weight_rows_tile)(const ConvGeometry& g, const T* x, const T* gy, T* gwt,
                                     int64_t j0, int64_t j1);
};

}  // namespace fastconv
