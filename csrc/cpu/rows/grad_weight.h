// Grad-weight of the row kernels: one input plane against one grad_output plane.
//
//   Wgrad: gw[r, s] = sum_{p, q} gy[p, q] * x[p*sh - ph + r*dh, q*sw - pw + s*dw]
//
// On staged input rows (staging.h), grad_output read in place; with the kernel height known,
// each input vector serves all R grad_output rows it meets.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <type_traits>

#include "staging.h"

namespace fastconv {
namespace FC_ISA {

// The grad_output plane as grad-weight reads it: rows of whole vectors, the last one
// loaded lane-masked (no copy of the plane), and its products masked past Q (not just
// multiplied by zero: 0 * inf is NaN). So narrow maps (Q < V, 7x7 or 14x14) stay vectorised.
template <typename T, typename Mask>
struct GradRows {
  const T* gy;
  int64_t Q, Qr;  // Qr: Q rounded up to whole vectors
  int tail;       // real lanes of the last vector
  Mask last_valid;
  const T* row(int64_t p) const { return gy + p * Q; }
  vec_t<T> last(const T* row) const { return loadu_n(row + Qr - Vec<T>::size, tail); }
};

// KS taps of kernel row r at once, output rows [b0, b1) except those reading input rows
// [skip0, skip1) (left to rows_wgrad_reuse): each grad_output vector is loaded once for KS
// FMAs, two sets of accumulators stay in registers over the whole block.
template <typename T, int KS, typename Mask>
static void rows_wgrad_taps(const ConvGeometry& g, const StagedRows<T>& st,
                            const GradRows<T, Mask>& gr, int64_t b0, int64_t b1, int64_t r,
                            int64_t s0, int64_t skip0, int64_t skip1, T* acc) {
  constexpr int V = Vec<T>::size;
  vec_t<T> a0[KS] = {}, a1[KS] = {};
  const int64_t* toff = st.tap_off() + s0;
  for (int64_t p = b0; p < b1; ++p) {
    const int64_t ih = g.in_row(p, r);
    if (ih < 0 || ih >= g.H || (ih >= skip0 && ih < skip1)) continue;
    const T* xs = st.row(ih);
    const T* xp = st.row_for(ih, true);
    const T* gyr = gr.row(p);
    int64_t q = 0;
    for (; q + 2 * V < gr.Qr; q += 2 * V) {
      const T* xr = st.in_place(q, 2 * V) ? xp : xs;
      const vec_t<T> g0 = loadu_keep(gyr + q), g1 = loadu_keep(gyr + q + V);
#pragma GCC unroll 8
      for (int s = 0; s < KS; ++s) {
        a0[s] += g0 * loadu(xr + toff[s] + q);
        a1[s] += g1 * loadu(xr + toff[s] + q + V);
      }
    }
    for (; q + V < gr.Qr; q += V) {
      const T* xr = st.in_place(q, V) ? xp : xs;
      const vec_t<T> g0 = loadu_keep(gyr + q);
#pragma GCC unroll 8
      for (int s = 0; s < KS; ++s) a0[s] += g0 * loadu(xr + toff[s] + q);
    }
    const vec_t<T> gl = gr.last(gyr);
    const T* xr = st.in_place(q, V) ? xp : xs;
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) {
      const vec_t<T> prod = gl * loadu(xr + toff[s] + q);
      a1[s] += gr.last_valid ? prod : vec_t<T>{};
    }
  }
#pragma GCC unroll 8
  for (int s = 0; s < KS; ++s) acc[r * g.S + s0 + s] += hsum<T>(a0[s] + a1[s]);
}

// Taps per pass of rows_wgrad_reuse: R * KS accumulators + R grad_output vectors + one
// input vector fit the register file.
template <typename T, int R>
constexpr int kWgradTaps = std::min(8, ((FC_VEC_BYTES >= 64 ? 32 : 16) - R - 2) / R);

// Grad-weight with the kernel height R known (stride_h = dil_h = 1), for input rows
// [i0, i1) whose R grad_output partners (rows ih + pad_h - r) all lie in the block: each
// input vector is loaded once per tap for all R of them -- R + KS loads for R * KS FMAs,
// where rows_wgrad_taps makes KS + 1 loads for KS FMAs.
template <typename T, int R, int KS, typename Mask>
static void rows_wgrad_reuse(const ConvGeometry& g, const StagedRows<T>& st,
                             const GradRows<T, Mask>& gr, int64_t s0, int64_t i0, int64_t i1,
                             T* acc) {
  constexpr int V = Vec<T>::size;
  vec_t<T> a[R][KS] = {};
  const int64_t* toff = st.tap_off() + s0;
  for (int64_t ih = i0; ih < i1; ++ih) {
    const T* xs = st.row(ih);
    const T* xp = st.row_for(ih, true);
    const T* gyr[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) gyr[r] = gr.row(ih + g.pad_h - r);
    int64_t q = 0;
    for (; q + V < gr.Qr; q += V) {
      const T* xr = st.in_place(q, V) ? xp : xs;
      vec_t<T> gv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) gv[r] = loadu_keep(gyr[r] + q);
#pragma GCC unroll 8
      for (int s = 0; s < KS; ++s) {
        const vec_t<T> xv = loadu_keep(xr + toff[s] + q);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) a[r][s] += gv[r] * xv;
      }
    }
    vec_t<T> gv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) gv[r] = gr.last(gyr[r]);
    const T* xr = st.in_place(q, V) ? xp : xs;
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) {
      const vec_t<T> xv = loadu(xr + toff[s] + q);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const vec_t<T> prod = gv[r] * xv;
        a[r][s] += gr.last_valid ? prod : vec_t<T>{};
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) acc[r * g.S + s0 + s] += hsum<T>(a[r][s]);
}

// Taps [s0, s0 + n) with a compile-time tap count (n <= KS).
template <typename T, int R, int KS, typename Mask>
static void rows_wgrad_reuse_n(int64_t n, const ConvGeometry& g, const StagedRows<T>& st,
                               const GradRows<T, Mask>& gr, int64_t s0, int64_t i0, int64_t i1,
                               T* acc) {
  if constexpr (KS >= 1) {
    if (n == KS) return rows_wgrad_reuse<T, R, KS>(g, st, gr, s0, i0, i1, acc);
    rows_wgrad_reuse_n<T, R, KS - 1>(n, g, st, gr, s0, i0, i1, acc);
  }
}

// All taps of kernel rows [0, R) for input rows [i0, i1), kWgradTaps at a time.
template <typename T, int R, typename Mask>
static void rows_wgrad_reuse_all(const ConvGeometry& g, const StagedRows<T>& st,
                                 const GradRows<T, Mask>& gr, int64_t i0, int64_t i1, T* acc) {
  constexpr int KS = kWgradTaps<T, R>;
  for (int64_t s0 = 0; s0 < g.S; s0 += KS)
    rows_wgrad_reuse_n<T, R, KS>(std::min<int64_t>(KS, g.S - s0), g, st, gr, s0, i0, i1, acc);
}

// acc[r*S + s] += sum over output rows [p0, p1) of gy * shifted x, in a fixed order.
template <typename T>
void rows_grad_weight(const ConvGeometry& g, const T* x, const T* gy, int64_t p0, int64_t p1,
                      T* acc) {
  constexpr int V = Vec<T>::size;
  const int64_t Qr = (g.Q + V - 1) / V * V;
  typename IVec<T>::type lane;
  for (int l = 0; l < V; ++l) lane[l] = l;
  const int tail = static_cast<int>(g.Q - (Qr - V));
  const GradRows<T, decltype(lane < tail)> gr{gy, g.Q, Qr, tail, lane < tail};
  for (int64_t b0 = p0; b0 < p1; b0 += kStageRows) {
    const int64_t b1 = std::min(p1, b0 + kStageRows);
    const StagedBlock<T> blk(g, x, b0, b1, Qr);
    const StagedRows<T>& st = blk.st;
    // Per band of kernel rows: input rows whose grad_output partners all lie in this block
    // and inside the image go through the row-reuse kernel; the block's edges through the
    // per-row one. The staged rows serve every band.
    const int64_t bands = kernel_row_bands(g);
    for (int64_t band_i = 0; band_i < bands; ++band_i) {
      int64_t r0;
      const ConvGeometry band = kernel_row_band(g, band_i, bands, &r0);
      T* band_acc = acc + r0 * g.S;
      int64_t i0 = 0, i1 = 0;
      if (band.stride_h == 1 && band.dil_h == 1 && band.R >= 2 && band.R <= kMaxReuseRows) {
        i0 = std::max<int64_t>(0, b0 - band.pad_h + band.R - 1);
        i1 = std::max(i0, std::min(g.H, b1 - band.pad_h));
        with_kernel_height(band.R, [&](auto R) {
          if constexpr (decltype(R)::value >= 2)
            rows_wgrad_reuse_all<T, decltype(R)::value>(band, st, gr, i0, i1, band_acc);
        });
      }
      for (int64_t r = 0; r < band.R; ++r) {
        for (int64_t s0 = 0; s0 < g.S; s0 += 8) {
          switch (std::min<int64_t>(8, g.S - s0)) {
#define FC_TAPS(n)                                                        \
  case n:                                                                 \
    rows_wgrad_taps<T, n>(band, st, gr, b0, b1, r, s0, i0, i1, band_acc); \
    break;
            FC_TAPS(1) FC_TAPS(2) FC_TAPS(3) FC_TAPS(4) FC_TAPS(5) FC_TAPS(6) FC_TAPS(7) FC_TAPS(8)
#undef FC_TAPS
          }
        }
      }
    }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
