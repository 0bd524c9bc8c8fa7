// Forward row kernels: one input plane correlated with one R x S kernel, a block of output
// rows at a time (the driver, driver.cpp, loops over planes and channels).
//
//   Fprop: y[p, q] = b + sum_{r, s} w[r, s] * x[p*sh - ph + r*dh, q*sw - pw + s*dw]
//   GEMM view: M = P*Q, N = 1, K = R*S -- far too thin for a GEMM, so we stay direct.
//
// A tile of rows x SIMD vectors of output columns stays in registers (shaped by the map's
// width so there are always several independent FMA chains) while the R x S window streams
// through, writing straight into y (bias in the registers, ragged row ends lane-masked).
// With the kernel height a template parameter (R <= 7, vertical stride and dilation 1)
// each staged input row is loaded once per tap column for every output row of the tile it
// feeds; otherwise one load per FMA. Grad-input at stride 1 is this kernel on grad_output
// with the flipped kernel.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <type_traits>

#include "../runtime/workspace.h"
#include "staging.h"

namespace fastconv {
namespace FC_ISA {

// Where a forward tile's results go: rows of y (row stride ldo), either overwritten with
// bias + sum or accumulated into (the multiplier sum of grad-input).
template <typename T>
struct OutRows {
  T* y;
  int64_t ldo;
  bool accumulate;
  T bias;
};

// RB output rows x U vectors of columns in registers: RB*U independent FMA chains, enough
// to hide the FMA latency even when a row is a single vector wide (14x14 feature maps).
// R == 0: any kernel height, vertical stride and dilation; one load per FMA.
// R > 0 (stride_h = dil_h = 1, kernel height R): each staged input row is loaded once per
// kernel column and feeds every output row of the tile whose window covers it, so a tile
// makes (RB + R - 1) * U loads for RB * R * U FMAs. The generic tile is bound by its loads
// (most straddle two cache lines); this one by its FMAs.
// Tiles at columns q0, q0 + U*V, ... < q1 of output rows [p, p + RB), `out` at row p,
// column 0; `tail` lanes of each tile's last vector are real columns (V for whole vectors;
// callers pass a ragged tile alone). The column loop is in here, not in the caller, so the
// row set-up is paid once per row block rather than once per small tile. Never inlined:
// inlined into the large row driver, GCC keeps small tiles' accumulators on the stack (a
// store-forwarding round trip per FMA).
template <typename T, int RB, int U, int R>
__attribute__((noinline)) static void rows_fwd_tiles(const ConvGeometry& g, const StagedRows<T>& st,
                                                     const T* w, int64_t p, int64_t q0, int64_t q1,
                                                     T* out, const OutRows<T>& o, int tail) {
  constexpr int V = Vec<T>::size;
  static_assert(U * V <= StagedRows<T>::kEdgeCols, "edge tiles wider than the staged edges");
  const bool ragged = tail < V;
  const int64_t* toff = st.tap_off();
  constexpr int I = R > 0 ? RB + R - 1 : 1;  // input rows under a tile (R > 0)
  const T *staged[I], *direct[I];
  if constexpr (R > 0)
#pragma GCC unroll 24
    for (int i = 0; i < I; ++i) {
      staged[i] = st.row(g.in_row(p, 0) + i);
      direct[i] = st.row_for(g.in_row(p, 0) + i, true);
    }
  for (int64_t q = q0; q < q1; q += U * V) {
    T* const o_q = out + q;
    vec_t<T> acc[RB][U];
#pragma GCC unroll 16
    for (int b = 0; b < RB; ++b)
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        const T* src = o_q + b * o.ldo + u * V;
        acc[b][u] = !o.accumulate            ? splat(o.bias)
                    : (u == U - 1 && ragged) ? loadu_n(src, tail)
                                             : loadu(src);
      }
    const bool inside = st.in_place(q, U * V);
    if constexpr (R == 0) {
      for (int64_t r = 0; r < g.R; ++r) {
        const T* wr = w + r * g.S;
        const T* xr[RB];
#pragma GCC unroll 16
        for (int b = 0; b < RB; ++b) xr[b] = st.row_for(g.in_row(p + b, r), inside) + q;
        for (int64_t s = 0; s < g.S; ++s) {
          const vec_t<T> wv = splat(wr[s]);
#pragma GCC unroll 16
          for (int b = 0; b < RB; ++b) {
            const T* xs = xr[b] + toff[s];
#pragma GCC unroll 8
            for (int u = 0; u < U; ++u) acc[b][u] += wv * loadu(xs + u * V);
          }
        }
      }
    } else {
      const T* xr[I];
#pragma GCC unroll 24
      for (int i = 0; i < I; ++i) xr[i] = (inside ? direct[i] : staged[i]) + q;
      for (int64_t s = 0; s < g.S; ++s) {
        vec_t<T> wv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) wv[r] = splat(w[r * g.S + s]);
#pragma GCC unroll 24
        for (int i = 0; i < I; ++i) {
          vec_t<T> v[U];
#pragma GCC unroll 8
          for (int u = 0; u < U; ++u) v[u] = loadu_keep(xr[i] + toff[s] + u * V);
#pragma GCC unroll 16
          for (int b = 0; b < RB; ++b) {
            if (i - b < 0 || i - b >= R) continue;
#pragma GCC unroll 8
            for (int u = 0; u < U; ++u) acc[b][u] += wv[i - b] * v[u];
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int b = 0; b < RB; ++b)
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) {
        if (u == U - 1 && ragged)
          storeu_n(o_q + b * o.ldo + u * V, acc[b][u], tail);
        else
          storeu(o_q + b * o.ldo + u * V, acc[b][u]);
      }
  }
}

// Output rows [p, p + RB), written straight into y; a row's last, partial vector is
// loaded and stored lane-masked, so nothing past the row's end is touched.
template <typename T, int RB, int U, int R>
static inline void rows_fwd_rowblock(const ConvGeometry& g, const StagedRows<T>& st, const T* w,
                                     int64_t p, const OutRows<T>& o) {
  constexpr int V = Vec<T>::size;
  T* out = o.y + p * o.ldo;
  const int64_t wide = g.Q / (U * V) * (U * V), whole = g.Q / V * V;
  if (wide > 0) rows_fwd_tiles<T, RB, U, R>(g, st, w, p, 0, wide, out, o, V);
  if (whole > wide) rows_fwd_tiles<T, RB, 1, R>(g, st, w, p, wide, whole, out, o, V);
  if (whole < g.Q)
    rows_fwd_tiles<T, RB, 1, R>(g, st, w, p, whole, whole + V, out, o,
                                static_cast<int>(g.Q - whole));
}

template <typename T, int RB, int U, int R>
static void rows_fwd_block(const ConvGeometry& g, const StagedRows<T>& st, const T* w, int64_t b0,
                           int64_t b1, const OutRows<T>& o) {
  int64_t p = b0;
  for (; p + RB <= b1; p += RB) rows_fwd_rowblock<T, RB, U, R>(g, st, w, p, o);
  // Leftover rows in halving blocks, so they keep several independent FMA chains.
  if constexpr (RB > 1)
    if (p < b1) rows_fwd_block<T, RB / 2, U, R>(g, st, w, p, b1, o);
}

// Tile shape by map width (in vectors) and register count, then the kernel-height
// specialisation: 32 vector registers (AVX-512) hold 4x4 accumulators + R weights + U
// inputs for R <= 7; 16 registers (AVX2, SSE, NEON) half as many accumulators.
template <typename T, int R>
static void rows_fwd_block_for(const ConvGeometry& g, const StagedRows<T>& st, const T* w,
                               int64_t b0, int64_t b1, const OutRows<T>& o) {
  const int64_t nvec = (g.Q + Vec<T>::size - 1) / Vec<T>::size;
  constexpr bool many_regs = FC_VEC_BYTES >= 64;
  if (nvec >= 4)
    rows_fwd_block<T, many_regs ? 4 : 2, many_regs ? 4 : 2, R>(g, st, w, b0, b1, o);
  else if (nvec >= 2)
    rows_fwd_block<T, many_regs ? 8 : 4, 2, R>(g, st, w, b0, b1, o);
  else
    rows_fwd_block<T, 8, 1, R>(g, st, w, b0, b1, o);
}

template <typename T>
static void rows_fwd_block_any(const ConvGeometry& g, const StagedRows<T>& st, const T* w,
                               int64_t b0, int64_t b1, const OutRows<T>& o) {
  const bool done = g.stride_h == 1 && g.dil_h == 1 && with_kernel_height(g.R, [&](auto R) {
                      rows_fwd_block_for<T, decltype(R)::value>(g, st, w, b0, b1, o);
                    });
  if (!done) rows_fwd_block_for<T, 0>(g, st, w, b0, b1, o);
}

// y[p, :] = bias + correlation of one input plane x with one R x S kernel w, for output
// rows [p0, p1); accumulate adds to y instead of starting from bias.
template <typename T>
void rows_forward(const ConvGeometry& g, const T* x, const T* w, T bias, T* y, int64_t p0,
                  int64_t p1, bool accumulate) {
  if (const int64_t bands = kernel_row_bands(g); bands > 1) {
    for (int64_t i = 0; i < bands; ++i) {  // later bands add to the first's output
      int64_t r0;
      const ConvGeometry band = kernel_row_band(g, i, bands, &r0);
      rows_forward(band, x, w + r0 * g.S, bias, y, p0, p1, accumulate || i > 0);
    }
    return;
  }
  constexpr int V = Vec<T>::size;
  const int64_t Qr = (g.Q + V - 1) / V * V;  // staged columns: whole vectors
  const OutRows<T> o{y, g.Q, accumulate, bias};
  for (int64_t b0 = p0; b0 < p1; b0 += kStageRows) {
    const int64_t b1 = std::min(p1, b0 + kStageRows);
    const StagedBlock<T> blk(g, x, b0, b1, Qr);
    rows_fwd_block_any<T>(g, blk.st, w, b0, b1, o);
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
