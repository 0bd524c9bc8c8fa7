// Grouped layers with few channels per group (C/G = K/G = G_w dividing the vector width:
// ResNeXt's 4, RegNet's 8; or two or three times it, 16 and 24 on AVX2) on channels_last
// activations. A vector of V output channels covers V / G_w whole groups, and so does the
// vector of V input channels at the same offset: lane k's group reads input lanes
// (k / G_w) * G_w + c' for c' < G_w. So
//
//   Fprop: y[pos][k] = b[k] + sum_{tap, c'} w[k][c'][tap] * x[pos, tap][grp(k) * G_w + c']
//
// is, per tap and c', one in-register permutation of a loaded input vector and one FMA with
// a weight vector w'[tap][c'][k] (packed once per call): V useful multiply-adds per FMA,
// where a dense GEMM over one group would use G_w of its lanes. Where a group fills a
// vector or two, every lane of a vector wants the same input channel: the permutation is a
// broadcast of that group's channel c' (group_base). Grad-input is the same kernel
// (the flipped weight of such a layer is again one; strided layers group input columns of one
// phase, as the dense channels_last kernels do); grad-weight accumulates per tap and c' the
// products of grad_output vectors with permuted input vectors over every position in a fixed
// order. Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../runtime/workspace.h"

namespace fastconv {
namespace FC_ISA {

// Output positions per call of the gathered kernel: QB accumulators and QB input vectors in
// registers; with one group per vector (broadcasts, no input vectors) more accumulators,
// so that more FMA chains are in flight than the FMA latency times the ports.
constexpr int kGroupedCols = 8;
constexpr int kGroupedBroadcastCols = 12;
template <typename T>
constexpr int grouped_cols(int64_t gw) {
  return gw >= Vec<T>::size ? kGroupedBroadcastCols : kGroupedCols;
}

// The first channel of the input vector that channel vector v's lanes read: its own
// offset, or where a group spans vectors, its group's first channel.
template <typename T>
inline int64_t group_base(int64_t v, int64_t gw) {
  constexpr int64_t V = Vec<T>::size;
  return gw > V ? v * V / gw * gw : v * V;
}

// idx[c'][lane] = (lane / gw) * gw + c': the input lane that output lane `lane` needs for
// channel c' of its group.
template <typename T>
inline void grouped_lanes(int gw, typename IVec<T>::type* idx) {
  constexpr int V = Vec<T>::size;
  for (int c = 0; c < gw; ++c)
    for (int l = 0; l < V; ++l) idx[c][l] = (l / gw) * gw + c;
}

// out[i] (i < qb, lanes [0, nc)) = bias (or zero) + sum over taps t, c' < gw of
// permute(a[t*QB + i][off : off + V], idx[c']) * (w[t] + c' * ldw)[0:V]. Rows of out are ldo
// apart. kWhole: nc = V; else only nc lanes are loaded (the last vector of a row, where a
// whole one would read past the end of the tensor).
template <typename T, int GW, bool kWhole>
__attribute__((noinline)) static void grouped_gather(int64_t taps, int64_t off, const T* const* a,
                                                     const T* const* w, int64_t ldw, const T* bias,
                                                     T* out, int64_t ldo, int qb, int nc) {
  constexpr int QB = grouped_cols<T>(GW);
  typename IVec<T>::type idx[GW];
  grouped_lanes<T>(GW, idx);
  vec_t<T> acc[QB];
  const vec_t<T> b = bias ? load_lanes(bias, nc) : vec_t<T>{};
#pragma GCC unroll 16
  for (int i = 0; i < QB; ++i) acc[i] = b;
  for (int64_t t = 0; t < taps; ++t) {
    const T* wt = w[t];
    if constexpr (GW >= Vec<T>::size) {
      // A group per vector or two: every lane wants the same input channel, so the
      // permutation is a broadcast, read straight from memory (a load, where a permutation
      // would take an FMA's share of the vector ports).
      const T* ar[QB];
#pragma GCC unroll 16
      for (int i = 0; i < QB; ++i) ar[i] = a[t * QB + i] + off;
#pragma GCC unroll 16
      for (int c = 0; c < GW; ++c) {
        const vec_t<T> wv = kWhole ? loadu(wt + c * ldw) : loadu_n(wt + c * ldw, nc);
#pragma GCC unroll 16
        for (int i = 0; i < QB; ++i) acc[i] += splat(ar[i][c]) * wv;
      }
    } else {
      vec_t<T> xv[QB];
#pragma GCC unroll 16
      for (int i = 0; i < QB; ++i)
        xv[i] = kWhole ? loadu_keep(a[t * QB + i] + off) : loadu_n(a[t * QB + i] + off, nc);
#pragma GCC unroll 16
      for (int c = 0; c < GW; ++c) {
        const vec_t<T> wv = kWhole ? loadu_keep(wt + c * ldw) : loadu_n(wt + c * ldw, nc);
#pragma GCC unroll 16
        for (int i = 0; i < QB; ++i) acc[i] += __builtin_shuffle(xv[i], idx[c]) * wv;
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < QB; ++i)
    if (i < qb) store_lanes(out + i * ldo, acc[i], nc);
}

template <typename T, int GW>
inline void grouped_gather_lanes(int64_t taps, int64_t off, const T* const* a, const T* const* w,
                                 int64_t ldw, const T* bias, T* out, int64_t ldo, int qb, int nc) {
  if (nc == Vec<T>::size)
    grouped_gather<T, GW, true>(taps, off, a, w, ldw, bias, out, ldo, qb, nc);
  else
    grouped_gather<T, GW, false>(taps, off, a, w, ldw, bias, out, ldo, qb, nc);
}

template <typename T>
inline void grouped_gather_any(int gw, int64_t taps, int64_t off, const T* const* a,
                               const T* const* w, int64_t ldw, const T* bias, T* out, int64_t ldo,
                               int qb, int nc) {
  switch (gw) {  // the widths grouped::applies admits
    case 2:
      return grouped_gather_lanes<T, 2>(taps, off, a, w, ldw, bias, out, ldo, qb, nc);
    case 4:
      return grouped_gather_lanes<T, 4>(taps, off, a, w, ldw, bias, out, ldo, qb, nc);
    case 8:
      return grouped_gather_lanes<T, 8>(taps, off, a, w, ldw, bias, out, ldo, qb, nc);
    case 16:
      if constexpr (2 * Vec<T>::size >= 16)
        return grouped_gather_lanes<T, 16>(taps, off, a, w, ldw, bias, out, ldo, qb, nc);
      break;
    case 24:
      if constexpr (Vec<T>::size == 8)
        return grouped_gather_lanes<T, 24>(taps, off, a, w, ldw, bias, out, ldo, qb, nc);
      break;
  }
}

// The weight as the kernels read it, in panels of one vector of lanes (channels), for the
// vectors [v0, v1): panel v is [tap][c'][V], contiguous, so a call of the kernel streams
// its weights from consecutive lines. Forward: lane k of panel (tap, c') is w[k][c'][tap];
// grad-input (dgrad): lane c of panel (tap, k') is w[grp(c)*gw + k'][c % gw][tap]. w:
// [K][gw][R][S], or (w_cl) channels_last [K][R][S][gw]; lanes past the channels are left
// as they are (the kernels never load them).
template <typename T>
void grouped_pack_weight(const ConvGeometry& g, const T* w, bool w_cl, bool dgrad, T* wp,
                         int64_t v0, int64_t v1) {
  constexpr int V = Vec<T>::size;
  const int64_t RS = g.R * g.S, gw = g.C_per_group(), cols = RS * gw;
  for (int64_t v = v0; v < v1; ++v) {
    const int64_t kb = v * V;
    const int nk = static_cast<int>(std::min<int64_t>(V, g.K - kb));
    T* panel = wp + v * cols * V;  // row (tap, c') at panel + (tap * gw + c') * V
    if (!dgrad) {
      // V rows of the weight x V of their values at a time through register transposes.
      for (int64_t j0 = 0; j0 < cols; j0 += V) {
        const int cnt = static_cast<int>(std::min<int64_t>(V, cols - j0));
        vec_t<T> t[V];  // t[j]: value j0 + j of rows kb..
        load_transposed(t, cnt, nk, w + kb * cols + j0, cols);
        for (int j = 0; j < cnt; ++j) {
          const int64_t col = j0 + j;  // tap * gw + c', or c' * RS + tap
          const int64_t row = w_cl ? col : (col % RS) * gw + col / RS;
          store_lanes(panel + row * V, t[j], nk);
        }
      }
      continue;
    }
    for (int64_t t = 0; t < RS; ++t)
      for (int64_t kq = 0; kq < gw; ++kq)
        for (int l = 0; l < nk; ++l) {
          const int64_t k = (kb + l) / gw * gw + kq, c = (kb + l) % gw;
          panel[(t * gw + kq) * V + l] = w_cl ? w[(k * RS + t) * gw + c] : w[(k * gw + c) * RS + t];
        }
  }
}

// Forward of output positions [j0, j1) of the batch, channel vectors [v0, v1) (channels
// v*V ..), from the packed weight.
template <typename T>
void grouped_fwd_tile(const ConvGeometry& g, const T* x, const T* wp, const T* bias, T* y,
                      int64_t v0, int64_t v1, int64_t j0, int64_t j1) {
  constexpr int V = Vec<T>::size;
  const int64_t RS = g.R * g.S, gw = g.C_per_group(), PQ = g.P * g.Q;
  const int QB = grouped_cols<T>(gw);
  const Workspace<const T*> a_ws(Slot::kTaps, RS * QB), w_ws(Slot::kRow2, RS);
  const Workspace<T> zero_ws(Slot::kRow, g.C + V);
  const T** a = a_ws.data();
  const T** wv = w_ws.data();
  zero_fill(zero_ws.data(), g.C + V);
  for (int64_t j = j0; j < j1; j += QB) {
    const int qb = static_cast<int>(std::min<int64_t>(QB, j1 - j));
    for (int i = 0; i < QB; ++i) {
      const int64_t jj = j + std::min(i, qb - 1), n = jj / PQ, p = (jj % PQ) / g.Q, q = jj % g.Q;
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t ih = g.in_row(p, r), iw = g.in_col(q, s);
          const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
          a[(r * g.S + s) * QB + i] = in ? x + ((n * g.H + ih) * g.W + iw) * g.C : zero_ws.data();
        }
    }
    for (int64_t v = v0; v < v1; ++v) {
      const int nc = static_cast<int>(std::min<int64_t>(V, g.K - v * V));
      for (int64_t t = 0; t < RS; ++t) wv[t] = wp + (v * RS + t) * gw * V;
      grouped_gather_any(static_cast<int>(gw), RS, group_base<T>(v, gw), a, wv, V,
                         bias ? bias + v * V : nullptr, y + j * g.K + v * V, g.K, qb, nc);
    }
  }
}

// Grad-input rows [h0, h1) of image n, channel vectors [v0, v1), any stride: input columns
// of one phase share the taps that reach them (as dense/nhwc.h's grad-input), rows of
// grad_output gathered per tap; wp: grouped_pack_weight's dgrad panels.
template <typename T>
void grouped_dgrad_tile(const ConvGeometry& g, const T* gy, const T* wp, T* gx, int64_t v0,
                        int64_t v1, int64_t n, int64_t h0, int64_t h1) {
  constexpr int V = Vec<T>::size;
  const int64_t RS = g.R * g.S, gw = g.C_per_group();
  const int QB = grouped_cols<T>(gw);
  const Workspace<const T*> a_ws(Slot::kTaps, RS * QB), w_ws(Slot::kRow2, RS);
  const Workspace<int64_t> taps_ws(Slot::kStage2, 2 * RS);
  const Workspace<T> zero_ws(Slot::kRow, g.K + V);
  const T** a = a_ws.data();
  const T** wv = w_ws.data();
  int64_t* taps = taps_ws.data();  // [i][0] = r * S + s, [i][1] = grad_output row p
  zero_fill(zero_ws.data(), g.K + V);
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t phase = 0; phase < std::min(g.stride_w, g.W); ++phase) {
      const int64_t nt = g.dgrad_taps(h, phase, taps);
      const int64_t cols = (g.W - phase + g.stride_w - 1) / g.stride_w;
      for (int64_t m0 = 0; m0 < cols; m0 += QB) {
        const int qb = static_cast<int>(std::min<int64_t>(QB, cols - m0));
        for (int64_t t = 0; t < nt; ++t) {
          const int64_t s = taps[2 * t] % g.S, p = taps[2 * t + 1];
          for (int i = 0; i < QB; ++i) {
            const int64_t w = phase + (m0 + std::min(i, qb - 1)) * g.stride_w;
            const int64_t qs = w + g.pad_w - s * g.dil_w;  // a multiple of stride_w
            const int64_t q = qs >= 0 ? qs / g.stride_w : -1;
            a[t * QB + i] =
                q >= 0 && q < g.Q ? gy + ((n * g.P + p) * g.Q + q) * g.K : zero_ws.data();
          }
        }
        const int64_t w0 = phase + m0 * g.stride_w;
        for (int64_t v = v0; v < v1; ++v) {
          const int nc = static_cast<int>(std::min<int64_t>(V, g.C - v * V));
          for (int64_t t = 0; t < nt; ++t) wv[t] = wp + (v * RS + taps[2 * t]) * gw * V;
          grouped_gather_any(static_cast<int>(gw), nt, group_base<T>(v, gw), a, wv, V,
                             static_cast<const T*>(nullptr),
                             gx + ((n * g.H + h) * g.W + w0) * g.C + v * V, g.stride_w * g.C, qb,
                             nc);
        }
      }
    }
}

// acc_out[tap][c'][k] (rows ld apart) for channel vectors [v0, v1) and every tap: adds the
// sum over the bands [b0, b1) of the batch's output rows (grouped_wgrad_bands: band b is
// image b / per_image, rows from b % per_image * rows) of gy[pos][k] * x[pos, tap][grp(k) *
// gw + c'], band by band, then vector, tap and position in order. A band's rows of x and
// grad_output, whole positions, stay in cache while every vector and tap reads them.
template <typename T, int GW>
__attribute__((noinline)) static void grouped_wgrad(const ConvGeometry& g, const T* x, const T* gy,
                                                    T* acc_out, int64_t ld, int64_t v0, int64_t v1,
                                                    int64_t b0, int64_t b1) {
  constexpr int V = Vec<T>::size;
  typename IVec<T>::type idx[GW];
  grouped_lanes<T>(GW, idx);
  const GroupedWgradBands bands = grouped_wgrad_bands(g);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t n = b / bands.per_image, p0 = b % bands.per_image * bands.rows;
    const int64_t p1 = std::min(g.P, p0 + bands.rows);
    for (int64_t v = v0; v < v1; ++v) {
      const int nc = static_cast<int>(std::min<int64_t>(V, g.K - v * V));
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s) {
          // The output columns whose input column iw = q * stride_w + off lies inside the
          // image, so that the inner loop has neither a bounds test nor an index division.
          const int64_t off = g.in_col(0, s);
          const int64_t q_lo = off >= 0 ? 0 : (-off + g.stride_w - 1) / g.stride_w;
          const int64_t q_hi = off > g.W - 1 ? 0 : std::min(g.Q, (g.W - 1 - off) / g.stride_w + 1);
          // Two chains per c' over alternate positions, as two arrays indexed by constants:
          // indexed by the position's parity, the accumulators lived on the stack and every
          // FMA went through memory (3x slower on a 104x56^2 layer, 13 groups, stride 2).
          // A group per vector or two: the permutations are broadcasts read from memory, and
          // a vector's worth of c' at a time (CW) are chains enough (two per c', or a
          // two-vector group's 16 at once, would not fit AVX2's registers).
          constexpr bool kTwoChains = GW < V;
          constexpr int CW = GW > V ? V : GW;
          for (int c0 = 0; c0 < GW; c0 += CW) {
            vec_t<T> acc0[CW] = {}, acc1[CW] = {};
            const auto step = [&](const T* gy_at, const T* xp, vec_t<T>* acc) {
              const vec_t<T> gv = load_lanes(gy_at, nc);
              if constexpr (GW >= V) {
#pragma GCC unroll 16
                for (int c = 0; c < CW; ++c) acc[c] += gv * splat(xp[c]);
              } else {
                const vec_t<T> xv = load_lanes(xp, nc);
#pragma GCC unroll 16
                for (int c = 0; c < CW; ++c) acc[c] += gv * __builtin_shuffle(xv, idx[c]);
              }
            };
            for (int64_t p = p0; p < p1; ++p) {
              const int64_t ih = g.in_row(p, r);
              if (ih < 0 || ih >= g.H) continue;
              const T* gy_row = gy + (n * g.P + p) * g.Q * g.K + v * V;
              const T* x_row = x + (n * g.H + ih) * g.W * g.C + group_base<T>(v, GW) + c0;
              int64_t q = q_lo;
              if constexpr (kTwoChains)
                for (; q + 1 < q_hi; q += 2) {
                  step(gy_row + q * g.K, x_row + (q * g.stride_w + off) * g.C, acc0);
                  step(gy_row + (q + 1) * g.K, x_row + ((q + 1) * g.stride_w + off) * g.C, acc1);
                }
              for (; q < q_hi; ++q)
                step(gy_row + q * g.K, x_row + (q * g.stride_w + off) * g.C, acc0);
            }
            T* out = acc_out + ((r * g.S + s) * GW + c0) * ld + v * V;
#pragma GCC unroll 16
            for (int c = 0; c < CW; ++c) {
              vec_t<T> sum = acc0[c];
              if constexpr (kTwoChains) sum += acc1[c];
              store_lanes(out + c * ld, load_lanes(out + c * ld, nc) + sum, nc);
            }
          }
        }
    }
  }
}

template <typename T>
void grouped_wgrad_tile(const ConvGeometry& g, const T* x, const T* gy, T* acc, int64_t ld,
                        int64_t v0, int64_t v1, int64_t b0, int64_t b1) {
  switch (g.C_per_group()) {  // the widths grouped::applies admits
    case 2:
      return grouped_wgrad<T, 2>(g, x, gy, acc, ld, v0, v1, b0, b1);
    case 4:
      return grouped_wgrad<T, 4>(g, x, gy, acc, ld, v0, v1, b0, b1);
    case 8:
      return grouped_wgrad<T, 8>(g, x, gy, acc, ld, v0, v1, b0, b1);
    case 16:
      if constexpr (2 * Vec<T>::size >= 16)
        return grouped_wgrad<T, 16>(g, x, gy, acc, ld, v0, v1, b0, b1);
      break;
    case 24:
      if constexpr (Vec<T>::size == 8)
        return grouped_wgrad<T, 24>(g, x, gy, acc, ld, v0, v1, b0, b1);
      break;
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
