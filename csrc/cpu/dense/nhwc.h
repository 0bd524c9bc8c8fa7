// Dense kernels on channels_last (NHWC) activations: every operand is read and written in
// place, no im2col and no layout copy. In NHWC each tap (r, s) of a position reads a
// contiguous run of C/groups input channels, so the implicit GEMM's operand rows are
// pointers into x itself (or into one zero row for padding):
//
//   Fprop: M = N*P*Q positions, N = K/G, K = R*S*C/G   y[pos][k] = bias + sum x[pos, tap][c] w
//   Dgrad: M = N*H*W positions, N = C/G, K = R*S*K/G   (any stride: positions of one column
//          phase share their taps, so each tap that reaches them is one gathered row)
//   Wgrad: per tap, M = K/G, N = C/G, K = N*P*Q        gw[k][r][s][c] (channels_last order)
//
// The micro-kernel is the dense one's (gemm.h): an MR x NR block of results in registers,
// MR broadcasts and 2 vector loads per step; here the broadcasts come from MR gathered rows
// per tap (positions) and the vectors from a weight packed once per call into NR-channel
// panels, [panel][tap][depth][NR]. A 1x1 stride-1 layer is a plain GEMM on x as
// (N*H*W) x C. Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../runtime/workspace.h"
#include "gemm.h"

namespace fastconv {
namespace FC_ISA {

// Columns of the channels_last micro-kernels' register tile, NV vectors: up to four where
// there are 32 vector registers (6 x 4 accumulators, 4 B vectors and a broadcast: 10 loads
// per 24 FMAs), up to two with 16. Fewer where the channels the columns run over would
// leave most lanes of the last panel idle (24 channels fill 75 % of two vectors, 38 % of
// four); one vector keeps only 6 FMA chains in flight, so it counts for less.
constexpr int kNhwcMaxVectors = FC_VEC_BYTES >= 64 ? 4 : 2;
template <typename T>
inline int nhwc_vectors(int64_t channels) {
  constexpr int V = Vec<T>::size;
  int best = 1;
  double best_score = 0;
  for (int nv = 1; nv <= kNhwcMaxVectors; nv *= 2) {
    const int64_t lanes = nv * V, panels = (channels + lanes - 1) / lanes;
    const double fill = double(channels) / double(panels * lanes);
    const double score = fill * (nv == 1 ? 0.7 : nv == 2 ? 0.9 : 1.0);
    if (score > best_score * 1.0001) best = nv, best_score = score;
  }
  return best;
}
// Panel width (channels) of that choice.
template <typename T>
inline int nhwc_lanes(int64_t channels) {
  return nhwc_vectors<T>(channels) * Vec<T>::size;
}

// C[0:mr, 0:nr] = init + sum over taps t of A_t * B_t, where A_t's row i is the gathered row
// a[t*MR + i] + off (depth values) and B_t's row kk the NR values at b[t] + (off + kk)*ldb;
// init is C itself (accumulate: a later slice of the depth), else bias[0:nr] or zero. Rows
// past mr are never stored (their pointers repeat row 0's).
template <typename T, int NV>
__attribute__((noinline)) static void gather_micro_kernel_n(int64_t taps, int64_t depth,
                                                            int64_t off, const T* const* a,
                                                            const T* const* b, int64_t ldb,
                                                            const T* bias, T* c, int64_t ldc,
                                                            int mr, int nr, bool accumulate) {
  constexpr int V = Vec<T>::size;
  vec_t<T> acc[MR][NV];
  if (accumulate) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int h = 0; h < NV; ++h) {
        const int n = std::min(V, nr - h * V);
        const T* ci = c + (i < mr ? i : 0) * ldc + h * V;
        acc[i][h] = n >= V ? loadu(ci) : n > 0 ? loadu_n(ci, n) : vec_t<T>{};
      }
  } else {
    vec_t<T> bv[NV];
#pragma GCC unroll 4
    for (int h = 0; h < NV; ++h) {
      const int n = std::min(V, nr - h * V);
      bv[h] = !bias || n <= 0 ? vec_t<T>{}
              : n >= V        ? loadu(bias + h * V)
                              : loadu_n(bias + h * V, n);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int h = 0; h < NV; ++h) acc[i][h] = bv[h];
  }
  for (int64_t t = 0; t < taps; ++t) {
    const T* ar[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) ar[i] = a[t * MR + i] + off;
    const T* bt = b[t] + off * ldb;
    for (int64_t kk = 0; kk < depth; ++kk) {
      vec_t<T> v[NV];
#pragma GCC unroll 4
      for (int h = 0; h < NV; ++h) v[h] = loadu(bt + kk * ldb + h * V);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const vec_t<T> ai = splat(ar[i][kk]);
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h) acc[i][h] += ai * v[h];
      }
    }
  }
  for (int i = 0; i < mr; ++i)
    for (int h = 0; h < NV; ++h) {
      const int n = std::min(V, nr - h * V);
      if (n <= 0) break;
      T* ci = c + i * ldc + h * V;
      if (n == V)
        storeu(ci, acc[i][h]);
      else
        storeu_n(ci, acc[i][h], n);
    }
}

// The gathered micro-kernel with nr <= 4 vectors of columns: NV = ceil(nr / V) rounded up to
// a power of two (panels are nhwc_lanes wide).
template <typename T>
inline void gather_micro_kernel(int64_t taps, int64_t depth, int64_t off, const T* const* a,
                                const T* const* b, int64_t ldb, const T* bias, T* c, int64_t ldc,
                                int mr, int nr, bool accumulate, int nv) {
  if (nv == 1)
    return gather_micro_kernel_n<T, 1>(taps, depth, off, a, b, ldb, bias, c, ldc, mr, nr,
                                       accumulate);
  if (kNhwcMaxVectors < 4 || nv == 2)
    return gather_micro_kernel_n<T, 2>(taps, depth, off, a, b, ldb, bias, c, ldc, mr, nr,
                                       accumulate);
  gather_micro_kernel_n<T, kNhwcMaxVectors>(taps, depth, off, a, b, ldb, bias, c, ldc, mr, nr,
                                            accumulate);
}

// Slices of a gathered reduction over taps x depth values: at most kKC2 values deep, so a
// slice's B panel stays in L1 while the positions' rows stream: whole taps where a tap is
// shallower, else pieces of one tap. fn(first tap, taps, first value, values).
constexpr int64_t kGatherSlice = 2 * kKC;
template <typename Fn>
inline void for_each_gather_slice(int64_t taps, int64_t depth, Fn&& fn) {
  if (depth >= kGatherSlice) {
    const int64_t pieces = (depth + kGatherSlice - 1) / kGatherSlice;
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t i = 0; i < pieces; ++i)
        fn(t, 1, i * depth / pieces, (i + 1) * depth / pieces - i * depth / pieces);
    return;
  }
  const int64_t per = std::max<int64_t>(1, kGatherSlice / std::max<int64_t>(depth, 1));
  for (int64_t t = 0; t < taps; t += per) fn(t, std::min(per, taps - t), 0, depth);
}

// C[0:mr, 0:nr] (+)= sum over kk < depth of a[kk*lda + i] * b[kk][0:nr]: A's columns are
// rows of grad_output (MR output channels of one position), B's rows gathered input rows
// (NV vectors of channels; kWhole: all of them, else lane-masked past nr). overwrite stores instead
// of adding.
template <typename T, int NV, bool kWhole>
__attribute__((noinline)) static void wgrad_micro_kernel_n(int64_t depth, const T* a, int64_t lda,
                                                           const T* const* b, T* c, int64_t ldc,
                                                           int mr, int nr, bool overwrite) {
  constexpr int V = Vec<T>::size;
  const T* ar[MR];  // rows past mr re-read row 0 and are never stored
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) ar[i] = a + (i < mr ? i : 0);
  vec_t<T> acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int h = 0; h < NV; ++h) acc[i][h] = vec_t<T>{};
  for (int64_t kk = 0; kk < depth; ++kk) {
    const T* bk = b[kk];
    vec_t<T> v[NV];
#pragma GCC unroll 4
    for (int h = 0; h < NV; ++h) {
      if constexpr (kWhole)
        v[h] = loadu(bk + h * V);
      else
        v[h] = loadu_n(bk + h * V, std::clamp(nr - h * V, 0, V));
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const vec_t<T> ai = splat(ar[i][kk * lda]);
#pragma GCC unroll 4
      for (int h = 0; h < NV; ++h) acc[i][h] += ai * v[h];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
#pragma GCC unroll 4
    for (int h = 0; h < NV; ++h) {
      const int n = std::clamp(nr - h * V, 0, V);
      T* ci = c + i * ldc + h * V;
      if (n == V) {
        storeu(ci, overwrite ? acc[i][h] : loadu(ci) + acc[i][h]);
      } else if (n > 0) {
        storeu_n(ci, overwrite ? acc[i][h] : loadu_n(ci, n) + acc[i][h], n);
      }
    }
  }
}

template <typename T, int NV>
inline void wgrad_micro_kernel_v(int64_t depth, const T* a, int64_t lda, const T* const* b, T* c,
                                 int64_t ldc, int mr, int nr, bool overwrite) {
  if (nr == NV * Vec<T>::size)
    wgrad_micro_kernel_n<T, NV, true>(depth, a, lda, b, c, ldc, mr, nr, overwrite);
  else
    wgrad_micro_kernel_n<T, NV, false>(depth, a, lda, b, c, ldc, mr, nr, overwrite);
}
template <typename T>
inline void wgrad_micro_kernel(int64_t depth, const T* a, int64_t lda, const T* const* b, T* c,
                               int64_t ldc, int mr, int nr, bool overwrite, int nv) {
  if (nv == 1) return wgrad_micro_kernel_v<T, 1>(depth, a, lda, b, c, ldc, mr, nr, overwrite);
  if (kNhwcMaxVectors < 4 || nv == 2)
    return wgrad_micro_kernel_v<T, 2>(depth, a, lda, b, c, ldc, mr, nr, overwrite);
  wgrad_micro_kernel_v<T, kNhwcMaxVectors>(depth, a, lda, b, c, ldc, mr, nr, overwrite);
}

// Rows [0, n) of src (row stride ld, kc columns) as panels of nhwc_lanes(lanes_of) rows.
template <typename T>
void nhwc_pack_panels(const T* src, int64_t ld, int64_t n, int64_t kc, T* dst, int64_t lanes_of) {
  const int nv = nhwc_vectors<T>(lanes_of);
  if (nv == 1) return pack_b_rows<T, Vec<T>::size>(src, ld, n, kc, dst);
  if (kNhwcMaxVectors < 4 || nv == 2) return pack_b_rows<T, 2 * Vec<T>::size>(src, ld, n, kc, dst);
  pack_b_rows<T, kNhwcMaxVectors * Vec<T>::size>(src, ld, n, kc, dst);
}

// Positions [j0, j1) of the batch (j = (n*P + p)*Q + q), output-channel panels [kp0, kp1) of
// group grp. w_packed: the group's panels of NR = nhwc_lanes(K/G) rows of its C/G*R*S
// weights, in the weight's own order: [c][tap] (w_cl false), or [tap][c] for a channels_last
// weight; bias: the group's.
template <typename T>
void dense_nhwc_fwd_tile(const ConvGeometry& g, const T* x, const T* w_packed, bool w_cl,
                         const T* bias, T* y, int64_t grp, int64_t kp0, int64_t kp1, int64_t j0,
                         int64_t j1) {
  const int nv = nhwc_vectors<T>(g.K_per_group()), nrmax = nv * Vec<T>::size;
  const int64_t RS = g.R * g.S, Cg = g.C_per_group(), Kg = g.K_per_group(), PQ = g.P * g.Q;
  const int64_t tiles = (j1 - j0 + MR - 1) / MR;
  const Workspace<const T*> a_ws(Slot::kTaps, tiles * RS * MR), b_ws(Slot::kRow2, RS);
  const Workspace<T> zero_ws(Slot::kRow, Cg);
  const T** a = a_ws.data();
  const T** b = b_ws.data();
  zero_fill(zero_ws.data(), Cg);
  // a[(tile * RS + tap) * MR + i]: the row tap reads for position j0 + tile*MR + i.
  for (int64_t tile = 0; tile < tiles; ++tile)
    for (int i = 0; i < MR; ++i) {
      const int64_t j = std::min(j1 - 1, j0 + tile * MR + i);
      const int64_t n = j / PQ, p = (j % PQ) / g.Q, q = j % g.Q;
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t ih = g.in_row(p, r);
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t iw = g.in_col(q, s);
          const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
          a[(tile * RS + r * g.S + s) * MR + i] =
              in ? x + ((n * g.H + ih) * g.W + iw) * g.C + grp * Cg : zero_ws.data();
        }
      }
    }
  for_each_gather_slice(RS, Cg, [&](int64_t t0, int64_t nt, int64_t off, int64_t depth) {
    for (int64_t kp = kp0; kp < kp1; ++kp) {
      const int nr = static_cast<int>(std::min<int64_t>(nrmax, Kg - kp * nrmax));
      // Row (c, tap) of the panel: c*RS + tap, or tap*C/G + c for a channels_last weight.
      const int64_t tap_step = w_cl ? Cg : 1, c_step = w_cl ? 1 : RS;
      for (int64_t t = 0; t < nt; ++t)
        b[t] = w_packed + (kp * Cg * RS + (t0 + t) * tap_step) * nrmax;
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t j = j0 + tile * MR;
        gather_micro_kernel(nt, depth, off, a + (tile * RS + t0) * MR, b, c_step * nrmax,
                            bias ? bias + kp * nrmax : nullptr, y + j * g.K + grp * Kg + kp * nrmax,
                            g.K, static_cast<int>(std::min<int64_t>(MR, j1 - j)), nr,
                            t0 > 0 || off > 0, nv);
      }
    }
  });
}

// Grad-input's weight panels of group grp, output channels [k0, k1) of the group:
// dst[tap][c / NR][k][c % NR] = w[k][c][tap] (NR = nhwc_lanes(C/G); the group's panels;
// lanes past C/G must be zero already). From a [K][C/G][R][S] weight V channels x up to V
// taps at a time through register transposes; from a channels_last one ([K][R][S][C/G])
// as runs of channels.
template <typename T>
void dense_nhwc_pack_dgrad_weight(const ConvGeometry& g, const T* w, bool w_cl, T* dst, int64_t grp,
                                  int64_t k0, int64_t k1) {
  constexpr int V = Vec<T>::size;
  const int64_t RS = g.R * g.S, Cg = g.C_per_group(), Kg = g.K_per_group();
  const int64_t nrmax = nhwc_lanes<T>(Cg), CP = (Cg + nrmax - 1) / nrmax;
  const auto at = [&](int64_t t, int64_t c, int64_t k) {  // where w[k][c][t] goes
    return dst + ((t * CP + c / nrmax) * Kg + k) * nrmax + c % nrmax;
  };
  for (int64_t k = k0; k < k1; ++k) {
    const T* wk = w + (grp * Kg + k) * Cg * RS;
    if (w_cl) {
      for (int64_t t = 0; t < RS; ++t)
        for (int64_t c0 = 0; c0 < Cg; c0 += V) {
          const int nc = static_cast<int>(std::min<int64_t>(V, Cg - c0));
          store_lanes(at(t, c0, k), load_lanes(wk + t * Cg + c0, nc), nc);
        }
      continue;
    }
    for (int64_t c0 = 0; c0 < Cg; c0 += V)
      for (int64_t t0 = 0; t0 < RS; t0 += V) {
        const int nc = static_cast<int>(std::min<int64_t>(V, Cg - c0));
        const int cnt = static_cast<int>(std::min<int64_t>(V, RS - t0));
        vec_t<T> v[V];  // v[j]: channels c0.. of tap t0 + j
        load_transposed(v, cnt, nc, wk + c0 * RS + t0, RS);
        for (int j = 0; j < cnt; ++j) store_lanes(at(t0 + j, c0, k), v[j], nc);
      }
  }
}

// Grad-input rows [h0, h1) of image n, input-channel panels [cp0, cp1) of group grp.
// w_packed: the group's [R*S][C/G / NR][K/G][NR] panels (w[k][c][r][s] at panel c / NR).
template <typename T>
void dense_nhwc_dgrad_tile(const ConvGeometry& g, const T* gy, const T* w_packed, T* gx,
                           int64_t grp, int64_t cp0, int64_t cp1, int64_t n, int64_t h0,
                           int64_t h1) {
  const int nv = nhwc_vectors<T>(g.C_per_group()), nrmax = nv * Vec<T>::size;
  const int64_t RS = g.R * g.S, Cg = g.C_per_group(), Kg = g.K_per_group();
  const int64_t CP = (Cg + nrmax - 1) / nrmax;
  const Workspace<const T*> a_ws(Slot::kTaps, RS * MR), b_ws(Slot::kRow2, RS);
  const Workspace<int64_t> taps_ws(Slot::kStage2, 2 * RS);
  const Workspace<T> zero_ws(Slot::kRow, Kg);
  const T** a = a_ws.data();
  const T** b = b_ws.data();
  int64_t* taps = taps_ws.data();  // [tap index][0] = r * S + s, [1] = the grad_output row p
  zero_fill(zero_ws.data(), Kg);
  for (int64_t cp = cp0; cp < cp1; ++cp) {
    const int nr = static_cast<int>(std::min<int64_t>(nrmax, Cg - cp * nrmax));
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t phase = 0; phase < std::min(g.stride_w, g.W); ++phase) {
        const int64_t nt = g.dgrad_taps(h, phase, taps);
        for (int64_t t = 0; t < nt; ++t) b[t] = w_packed + (taps[2 * t] * CP + cp) * Kg * nrmax;
        const int64_t cols = (g.W - phase + g.stride_w - 1) / g.stride_w;
        for (int64_t m0 = 0; m0 < cols; m0 += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, cols - m0));
          for (int64_t t = 0; t < nt; ++t) {
            const int64_t s = taps[2 * t] % g.S, p = taps[2 * t + 1];
            for (int i = 0; i < MR; ++i) {
              const int64_t w = phase + (m0 + std::min(i, mr - 1)) * g.stride_w;
              const int64_t qs = w + g.pad_w - s * g.dil_w;  // a multiple of stride_w
              const int64_t q = qs >= 0 ? qs / g.stride_w : -1;
              a[t * MR + i] = q >= 0 && q < g.Q ? gy + ((n * g.P + p) * g.Q + q) * g.K + grp * Kg
                                                : zero_ws.data();
            }
          }
          const int64_t w0 = phase + m0 * g.stride_w;
          T* c = gx + ((n * g.H + h) * g.W + w0) * g.C + grp * Cg + cp * nrmax;
          if (nt == 0)  // no tap reaches these columns
            gather_micro_kernel(int64_t{0}, Kg, 0, a, b, nrmax, static_cast<const T*>(nullptr), c,
                                g.stride_w * g.C, mr, nr, false, nv);
          for_each_gather_slice(nt, Kg, [&](int64_t t0, int64_t ntap, int64_t off, int64_t d) {
            gather_micro_kernel(ntap, d, off, a + t0 * MR, b + t0, nrmax,
                                static_cast<const T*>(nullptr), c, g.stride_w * g.C, mr, nr,
                                t0 > 0 || off > 0, nv);
          });
        }
      }
  }
}

// Grad-weight of tap (r, s) for group grp, output channels [k0, k1) of the group and
// input-channel panel cp: gw (channels_last, [K][R][S][C/G]) over every position in a fixed
// order.
template <typename T>
void dense_nhwc_wgrad_tile(const ConvGeometry& g, const T* x, const T* gy, T* gw, int64_t grp,
                           int64_t tap, int64_t cp, int64_t k0, int64_t k1) {
  const int nv = nhwc_vectors<T>(g.C_per_group()), nrmax = nv * Vec<T>::size;
  const int64_t RS = g.R * g.S, Cg = g.C_per_group(), Kg = g.K_per_group(), PQ = g.P * g.Q;
  const int64_t r = tap / g.S, s = tap % g.S, c0 = cp * nrmax;
  const int nr = static_cast<int>(std::min<int64_t>(nrmax, Cg - c0));
  const Workspace<const T*> b_ws(Slot::kTaps, kNhwcDepth);
  const Workspace<T> zero_ws(Slot::kRow, nrmax);
  const T** b = b_ws.data();
  zero_fill(zero_ws.data(), nrmax);
  for (int64_t j0 = 0; j0 < g.N * PQ; j0 += kNhwcDepth) {
    const int64_t depth = std::min(kNhwcDepth, g.N * PQ - j0);
    for (int64_t jj = 0; jj < depth; ++jj) {
      const int64_t j = j0 + jj, n = j / PQ, p = (j % PQ) / g.Q, q = j % g.Q;
      const int64_t ih = g.in_row(p, r), iw = g.in_col(q, s);
      b[jj] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W
                  ? x + ((n * g.H + ih) * g.W + iw) * g.C + grp * Cg + c0
                  : zero_ws.data();
    }
    for (int64_t k = k0; k < k1; k += MR)
      wgrad_micro_kernel(depth, gy + j0 * g.K + grp * Kg + k, g.K, b,
                         gw + ((grp * Kg + k) * RS + tap) * Cg + c0, RS * Cg,
                         static_cast<int>(std::min<int64_t>(MR, k1 - k)), nr, j0 == 0, nv);
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
