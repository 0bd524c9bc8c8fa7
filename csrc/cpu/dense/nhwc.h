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
// (N*H*W) x C. A few-channel first layer gathers whole kernel rows instead (nhwc_taps in
// table.h): R taps of S*C values. Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <type_traits>
#include <utility>

#include "../runtime/workspace.h"
#include "gemm.h"

namespace fastconv {
namespace FC_ISA {

// Columns of the channels_last micro-kernels' register tile, NV vectors: up to four where
// there are 32 vector registers (6 x 4 accumulators, 4 B vectors and a broadcast: 10 loads
// per 24 FMAs), up to two with 16. The last panel runs on the vectors its channels fill
// (gather_micro_kernel), so the choice weighs what each panel's tile costs per vector: fewer
// vectors mean more loads per FMA, and one vector keeps only 6 FMA chains in flight. 96
// channels are a 4- and a 2-vector panel (where 32-wide panels would run 3 narrow tiles);
// 24 are one 2-vector panel, and only the last vector is partly idle.
constexpr int kNhwcMaxVectors = FC_VEC_BYTES >= 64 ? 4 : 2;
template <typename T>
inline int nhwc_vectors(int64_t channels) {
  constexpr int V = Vec<T>::size;
  const auto rate = [](int64_t nv) { return nv == 1 ? 0.7 : nv == 2 ? 0.9 : nv == 3 ? 0.95 : 1.0; };
  const int64_t vectors = (channels + V - 1) / V;
  int best = 1;
  double best_cost = 0;
  for (int nv = 1; nv <= kNhwcMaxVectors; nv *= 2) {
    const int64_t tail = vectors % nv;
    const double cost = double(vectors / nv) * nv / rate(nv) + (tail ? tail / rate(tail) : 0.0);
    if (nv == 1 || cost < best_cost * 0.9999) best = nv, best_cost = cost;
  }
  return best;
}
// Panel width (channels) of that choice.
template <typename T>
inline int nhwc_lanes(int64_t channels) {
  return nhwc_vectors<T>(channels) * Vec<T>::size;
}

// C[0:mr, 0:nr] = init + sum over taps t of A_t * B_t, where A_t's row i is the gathered row
// a[t*lda + i] + off (depth values) and B_t's row kk the NR values at b[t] + kk*ldb;
// init is C itself (accumulate: a later slice of the depth), else bias[0:nr] or zero. Rows
// past mr are never stored (their pointers repeat row 0's).
template <typename T, int NV>
__attribute__((noinline)) static void gather_micro_kernel_n(
    int64_t taps, int64_t depth, int64_t off, const T* const* a, int64_t lda, const T* const* b,
    int64_t ldb, const T* bias, T* c, int64_t ldc, int mr, int nr, bool accumulate) {
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
    for (int i = 0; i < MR; ++i) ar[i] = a[t * lda + i] + off;
    const T* bt = b[t];
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
  store_register_tile<T, NV>(acc, c, ldc, mr, nr, true);
}

// fn(std::integral_constant<int, NV>) for the vectors nr columns fill: nv (the panel's, from
// nhwc_lanes) or fewer on the last panel, whose unused vectors would only multiply zeros
// (112 channels are a 64- and a 48-wide panel, and 48 is three vectors, not four).
template <typename T, typename Fn>
inline void on_filled_vectors(int nv, int nr, Fn&& fn) {
  const int need = std::min(nv, (nr + Vec<T>::size - 1) / Vec<T>::size);
  if (need == 1) return fn(std::integral_constant<int, 1>{});
  if (kNhwcMaxVectors < 4 || need == 2) return fn(std::integral_constant<int, 2>{});
  if constexpr (kNhwcMaxVectors >= 4)
    if (need == 3) return fn(std::integral_constant<int, 3>{});
  fn(std::integral_constant<int, kNhwcMaxVectors>{});
}

template <typename T>
inline void gather_micro_kernel(int64_t taps, int64_t depth, int64_t off, const T* const* a,
                                int64_t lda, const T* const* b, int64_t ldb, const T* bias, T* c,
                                int64_t ldc, int mr, int nr, bool accumulate, int nv) {
  on_filled_vectors<T>(nv, nr, [&](auto NV) {
    gather_micro_kernel_n<T, NV>(taps, depth, off, a, lda, b, ldb, bias, c, ldc, mr, nr,
                                 accumulate);
  });
}

// Slices of a gathered reduction over taps x depth values: at most kKC2 values deep, so a
// slice's B panel stays in L1 while the positions' rows stream: whole taps where a tap is
// shallower, else pieces of one tap. fn(first tap, taps, first value, values).
constexpr int64_t kGatherSlice = 2 * kKC;
// Bytes of weight panels a forward slice may cycle through per micro-tile: an L1's worth
// (32 KB; the micro-tile's input rows are a few lines). Half of that left 24->144 and
// 64->256 1x1 layers (18 and 24 KB of panels once 144 and 256 channels became 64-wide
// panels) writing their output rows in strips (docs/measurements.md).
constexpr int64_t kGatherPanelsL1Bytes = 32 << 10;
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

// The same reduction for weights in [c][tap] order: slices of every tap and a gather
// slice's worth of channels, whole vectors of them where that is more than one (nine taps:
// 32 channels, where 28 left the gathered runs ragged across cache lines and cost a few
// percent), so at most kChannelSliceMax values deep. fn as for for_each_gather_slice.
constexpr int64_t kChannelSliceMax = 2 * kGatherSlice;
template <typename T, typename Fn>
inline void for_each_channel_slice(int64_t taps, int64_t depth, Fn&& fn) {
  constexpr int64_t V = Vec<T>::size;
  int64_t per = std::max<int64_t>(1, kGatherSlice / taps);
  if (per > V) per = (per + V - 1) / V * V;
  for (int64_t c = 0; c < depth; c += per) fn(0, taps, c, std::min(per, depth - c));
}

// The grad-weight micro-kernels' B row: NV vectors at row (kWhole: all nr = NV*V lanes,
// else lane-masked past nr).
template <typename T, int NV, bool kWhole>
inline void load_wgrad_row(const T* row, int nr, vec_t<T>* v) {
  constexpr int V = Vec<T>::size;
#pragma GCC unroll 4
  for (int h = 0; h < NV; ++h) {
    if constexpr (kWhole)
      v[h] = loadu(row + h * V);
    else
      v[h] = loadu_n(row + h * V, std::clamp(nr - h * V, 0, V));
  }
}

// C[0:mr, 0:nr] (+)= sum over kk < depth of a[kk*lda + i] * b[kk][0:nr]: A's columns are
// rows of grad_output (MR output channels of one position), B's rows gathered input rows
// (NV vectors of channels; kWhole: all of them, else lane-masked past nr). overwrite stores instead
// of adding.
template <typename T, int NV, bool kWhole>
__attribute__((noinline)) static void wgrad_micro_kernel_n(int64_t depth, const T* a, int64_t lda,
                                                           const T* const* b, T* c, int64_t ldc,
                                                           int mr, int nr, bool overwrite) {
  const T* ar[MR];  // rows past mr re-read row 0 and are never stored
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) ar[i] = a + (i < mr ? i : 0);
  vec_t<T> acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int h = 0; h < NV; ++h) acc[i][h] = vec_t<T>{};
  for (int64_t kk = 0; kk < depth; ++kk) {
    vec_t<T> v[NV];
    load_wgrad_row<T, NV, kWhole>(b[kk], nr, v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const vec_t<T> ai = splat(ar[i][kk * lda]);
#pragma GCC unroll 4
      for (int h = 0; h < NV; ++h) acc[i][h] += ai * v[h];
    }
  }
  store_register_tile<T, NV>(acc, c, ldc, mr, nr, overwrite);
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
  on_filled_vectors<T>(nv, nr, [&](auto NV) {
    wgrad_micro_kernel_v<T, NV>(depth, a, lda, b, c, ldc, mr, nr, overwrite);
  });
}

// Rows [0, n) of src (row stride ld, kc columns) as panels of nhwc_lanes(lanes_of) rows.
template <typename T>
void nhwc_pack_panels(const T* src, int64_t ld, int64_t n, int64_t kc, T* dst, int64_t lanes_of) {
  const int nv = nhwc_vectors<T>(lanes_of);
  if (nv == 1) return pack_b_rows<T, Vec<T>::size>(src, ld, n, kc, dst);
  if (kNhwcMaxVectors < 4 || nv == 2) return pack_b_rows<T, 2 * Vec<T>::size>(src, ld, n, kc, dst);
  pack_b_rows<T, kNhwcMaxVectors * Vec<T>::size>(src, ld, n, kc, dst);
}

// (n, p, q) of batch position j = (n*P + p)*Q + q, then of each next position in turn:
// gathers walk their positions rather than dividing for each (with a few channels a
// position's share of the work is a few dozen FMAs).
struct PositionWalk {
  int64_t n, p, q, P, Q;
  PositionWalk(const ConvGeometry& g, int64_t j)
      : n(j / (g.P * g.Q)), p(j % (g.P * g.Q) / g.Q), q(j % g.Q), P(g.P), Q(g.Q) {}
  void next() { skip(1); }
  // k positions on, at most to the end of the output row (k <= Q - q).
  void skip(int64_t k) {
    if ((q += k) < Q) return;
    q = 0;
    if (++p < P) return;
    p = 0;
    ++n;
  }
};

// Kernel-row taps' runs (nhwc_taps rows) of positions [j, j + count): put(t, i, run) for
// tap (kernel row) t of position j + i. A run is S*C values of x where the row lies inside
// the image, else a copy with zeros past the width's edges at stage + (t*count + i)*S*C,
// or `zero` (S*C zeros) above and below. Positions walk output rows, so interior runs are
// a multiply-add each (a position's share of a few-channel layer's work is a few FMAs).
template <typename T, typename Put>
void gather_kernel_rows(const ConvGeometry& g, const T* x, int64_t j, int64_t count, const T* zero,
                        T* stage, Put&& put) {
  const int64_t SC = g.S * g.C, row = g.W * g.C;
  // Columns q whose kernel rows lie inside the width (dilation 1 along it).
  const Range interior = g.interior_cols();
  const int64_t q_lo = interior.lo, q_hi = interior.hi;
  PositionWalk at(g, j);
  for (int64_t i = 0; i < count;) {
    const int64_t n = std::min(count - i, g.Q - at.q);  // positions left in this output row
    for (int64_t t = 0; t < g.R; ++t) {
      const int64_t ih = g.in_row(at.p, t);
      if (ih < 0 || ih >= g.H) {
        for (int64_t u = 0; u < n; ++u) put(t, i + u, zero);
        continue;
      }
      const T* xr = x + (at.n * g.H + ih) * row;
      // Positions [u0, u1) of this stretch are interior; the others are staged.
      const int64_t u0 = std::clamp(q_lo - at.q, int64_t{0}, n);
      const int64_t u1 = std::clamp(q_hi - at.q, u0, n);
      for (int64_t u = u0; u < u1; ++u) put(t, i + u, xr + g.in_col(at.q + u, 0) * g.C);
      const auto staged = [&](int64_t u) {
        const int64_t iw = g.in_col(at.q + u, 0);
        T* st = stage + (t * count + i + u) * SC;
        for (int64_t s = 0; s < g.S; ++s) {
          const bool in = iw + s >= 0 && iw + s < g.W;
          for (int64_t c = 0; c < g.C; ++c) st[s * g.C + c] = in ? xr[(iw + s) * g.C + c] : T(0);
        }
        put(t, i + u, static_cast<const T*>(st));
      };
      for (int64_t u = 0; u < u0; ++u) staged(u);
      for (int64_t u = u1; u < n; ++u) staged(u);
    }
    at.skip(n);
    i += n;
  }
}

// The run of tap (r, s) of position (n, p, q) (nhwc_taps, not kernel rows): group grp's
// C/G channels in x, or `zero` in the padding.
template <typename T>
const T* nhwc_tap_run(const ConvGeometry& g, const T* x, int64_t grp, int64_t n, int64_t p,
                      int64_t q, int64_t r, int64_t s, const T* zero) {
  const int64_t ih = g.in_row(p, r), iw = g.in_col(q, s);
  return ih >= 0 && ih < g.H && iw >= 0 && iw < g.W
             ? x + ((n * g.H + ih) * g.W + iw) * g.C + grp * g.C_per_group()
             : zero;
}

// Positions [j0, j1) of the batch (j = (n*P + p)*Q + q), output-channel panels [kp0, kp1) of
// group grp (NR = nhwc_lanes(K/G) output channels a panel). w: the group's weight as `wk`
// says (table.h); bias: the group's.
template <typename T>
void dense_nhwc_fwd_tile(const ConvGeometry& g, const T* x, const T* w, NhwcWeight wk,
                         const T* bias, T* y, int64_t grp, int64_t kp0, int64_t kp1, int64_t j0,
                         int64_t j1) {
  const int nv = nhwc_vectors<T>(g.K_per_group()), nrmax = nv * Vec<T>::size;
  const NhwcTaps v = nhwc_taps(g);
  const int64_t Cg = g.C_per_group(), Kg = g.K_per_group(), RS = g.R * g.S, CRS = Cg * RS;
  const int64_t ld = (j1 - j0 + MR - 1) / MR * MR, runs = v.taps * ld;  // whole micro-tiles
  const bool raw = nhwc_raw_rows(wk), tap_major = nhwc_tap_major(wk);
  // Weights in [c][tap] order run in slices of every tap and a few channels (for the raw
  // rows, one run of each row; for packed panels, the same order of the sums, so a layer's
  // bits do not depend on which of the two the thread count picks).
  const bool by_channel = v.taps > 1 && !tap_major;
  const Workspace<const T*> a_ws(Slot::kTaps, runs), b_ws(Slot::kRow2, (kp1 - kp0) * v.taps);
  const Workspace<T> zero_ws(Slot::kRow, v.depth);
  const Workspace<T> stage_ws(Slot::kStage, v.rows ? runs * v.depth : 0);
  // Raw slices: one panel's (at most kChannelSliceMax rows), or every panel's of a task
  // where they fit L1 together.
  const Workspace<T> slice_ws(
      Slot::kPackB,
      raw ? std::max<int64_t>(kChannelSliceMax * nrmax, kGatherPanelsL1Bytes / sizeof(T)) : 0);
  const T** a = a_ws.data();
  const T** b = b_ws.data();
  zero_fill(zero_ws.data(), v.depth);
  // a[t * ld + jj]: the run tap t reads for position j0 + jj (past j1: the last position's
  // again).
  if (v.rows) {
    gather_kernel_rows(g, x, j0, j1 - j0, zero_ws.data(), stage_ws.data(),
                       [&](int64_t t, int64_t jj, const T* run) { a[t * ld + jj] = run; });
  } else if (g.pointwise_in_place()) {  // position j's run is row j of x
    for (int64_t jj = 0; jj < j1 - j0; ++jj) a[jj] = x + (j0 + jj) * g.C + grp * Cg;
  } else {
    PositionWalk at(g, j0);
    for (int64_t jj = 0; jj < j1 - j0; ++jj, at.next())
      for (int64_t r = 0, t = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s, ++t)
          a[t * ld + jj] = nhwc_tap_run(g, x, grp, at.n, at.p, at.q, r, s, zero_ws.data());
  }
  for (int64_t t = 0; t < v.taps; ++t)
    for (int64_t jj = j1 - j0; jj < ld; ++jj) a[t * ld + jj] = a[t * ld + j1 - j0 - 1];
  // Row (c, tap) of a packed panel: c*RS + tap, or tap*C/G + c in [tap][c] order (so kernel
  // row r starts at r*S*C).
  const int64_t tap_step = tap_major ? v.depth : 1, c_step = tap_major ? 1 : RS;
  const int64_t ldb = raw && tap_major ? nrmax : c_step * nrmax;
  const auto slices = [&](auto&& fn) {
    if (by_channel) return for_each_channel_slice<T>(v.taps, v.depth, fn);
    for_each_gather_slice(v.taps, v.depth, fn);
  };
  slices([&](int64_t t0, int64_t nt, int64_t off, int64_t depth) {
    const int64_t np = kp1 - kp0;
    // b[(kp - kp0) * nt + t]: row `off` of tap t0 + t of panel kp, ldb apart; raw rows are
    // first packed into slice_ws at `slot` (the slice is one run of columns of each row: its
    // taps follow each other in a channels_last row, its channels in a contiguous one).
    const auto panel = [&](int64_t kp, int64_t slot) {
      const T** bk = b + (kp - kp0) * nt;
      if (wk == NhwcWeight::kRawColumns) {  // rows off.. of [C/G][K/G], lanes kp*nrmax..
        T* dst = slice_ws.data() + slot * depth * nrmax;
        const int64_t n = std::min<int64_t>(nrmax, Kg - kp * nrmax);
        for (int64_t kk = 0; kk < depth; ++kk) {
          copy_strided(dst + kk * nrmax, w + (off + kk) * Kg + kp * nrmax, n, 1);
          zero_fill(dst + kk * nrmax + n, nrmax - n);
        }
        bk[0] = dst;
      } else if (raw) {
        T* dst = slice_ws.data() + slot * nt * depth * nrmax;
        nhwc_pack_panels(w + kp * nrmax * CRS + t0 * tap_step + off * c_step, CRS,
                         std::min<int64_t>(nrmax, Kg - kp * nrmax), nt * depth, dst, Kg);
        for (int64_t t = 0; t < nt; ++t) bk[t] = dst + t * (tap_major ? depth : 1) * nrmax;
      } else {
        for (int64_t t = 0; t < nt; ++t)
          bk[t] = w + (kp * CRS + (t0 + t) * tap_step + off * c_step) * nrmax;
      }
      return bk;
    };
    const auto tile = [&](int64_t kp, int64_t jj, const T* const* bk) {
      const int64_t j = j0 + jj;
      gather_micro_kernel(
          nt, depth, off, a + t0 * ld + jj, ld, bk, ldb, bias ? bias + kp * nrmax : nullptr,
          y + j * g.K + grp * Kg + kp * nrmax, g.K, static_cast<int>(std::min<int64_t>(MR, j1 - j)),
          static_cast<int>(std::min<int64_t>(nrmax, Kg - kp * nrmax)), t0 > 0 || off > 0, nv);
    };
    // Shallow slices whose panels all fit in L1 together: every panel of a micro-tile's
    // positions in turn, so each output row is written whole, line after line. Panel by
    // panel, each row is written in strips by separate sweeps, which made MobileNet's
    // 24->144 1x1 on 56x56 at batch 8 about 1.7x slower (docs/measurements.md).
    if (np * nt * depth * nrmax * int64_t{sizeof(T)} <= kGatherPanelsL1Bytes) {
      for (int64_t kp = kp0; kp < kp1; ++kp) panel(kp, kp - kp0);
      for (int64_t jj = 0; jj < ld; jj += MR)
        for (int64_t kp = kp0; kp < kp1; ++kp) tile(kp, jj, b + (kp - kp0) * nt);
      return;
    }
    for (int64_t kp = kp0; kp < kp1; ++kp) {
      const T* const* bk = panel(kp, 0);
      for (int64_t jj = 0; jj < ld; jj += MR) tile(kp, jj, bk);
    }
  });
}

// Grad-input's weight panels of group grp, output channels [k0, k1) of the group:
// dst[tap][c / NR][k][c % NR] = w[k][c][tap] (NR = nhwc_lanes(C/G); the group's panels),
// and zero in the lanes past C/G (rows k0..k1 only: zeroing the whole buffer first had
// cost 17 % of a batch-1 160->960 1x1 grad-input). From a [K][C/G][R][S] weight V channels
// x up to V taps at a time through register transposes; from a channels_last one
// ([K][R][S][C/G]) as runs of channels.
template <typename T>
void dense_nhwc_pack_dgrad_weight(const ConvGeometry& g, const T* w, bool w_cl, T* dst, int64_t grp,
                                  int64_t k0, int64_t k1) {
  constexpr int V = Vec<T>::size;
  const int64_t RS = g.R * g.S, Cg = g.C_per_group(), Kg = g.K_per_group();
  const int64_t nrmax = nhwc_lanes<T>(Cg), CP = (Cg + nrmax - 1) / nrmax;
  const auto at = [&](int64_t t, int64_t c, int64_t k) {  // where w[k][c][t] goes
    return dst + ((t * CP + c / nrmax) * Kg + k) * nrmax + c % nrmax;
  };
  const int64_t used = Cg - (CP - 1) * nrmax;  // lanes of the last panel
  for (int64_t k = k0; k < k1; ++k) {
    const T* wk = w + (grp * Kg + k) * Cg * RS;
    if (used < nrmax)
      for (int64_t t = 0; t < RS; ++t) std::fill_n(at(t, Cg, k), nrmax - used, T(0));
    if (w_cl || RS == 1) {  // a 1x1 weight's two layouts are one
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
// The positions fall into stride_h x stride_w classes (a row's parity, a column's phase),
// each with one set of taps; a class's positions run in micro-tiles over its rows in turn,
// so a tile spans rows where a row has few of them (by rows, a 14^2 map's 7 columns of a
// phase filled tiles of 6 and 1: 512x14^2 3x3 s2 at batch 8 ran at 0.66x torch). A tap
// outside grad_output for a position reads a zero row. Tiles within one row store in
// place; the others into a scratch tile, then copied out position by position.
template <typename T>
void dense_nhwc_dgrad_tile(const ConvGeometry& g, const T* gy, const T* w_packed, T* gx,
                           int64_t grp, int64_t cp0, int64_t cp1, int64_t n, int64_t h0,
                           int64_t h1) {
  const int nv = nhwc_vectors<T>(g.C_per_group()), nrmax = nv * Vec<T>::size;
  const int64_t RS = g.R * g.S, Cg = g.C_per_group(), Kg = g.K_per_group();
  const int64_t CP = (Cg + nrmax - 1) / nrmax;
  const Workspace<const T*> a_ws(Slot::kTaps, RS * MR), b_ws(Slot::kRow2, RS);
  const Workspace<int64_t> taps_ws(Slot::kStage2, RS);
  const Workspace<T> zero_ws(Slot::kRow, Kg), tile_ws(Slot::kTile, MR * nrmax);
  const T** a = a_ws.data();
  const T** b = b_ws.data();
  int64_t* taps = taps_ws.data();  // the class's taps, r * S + s
  zero_fill(zero_ws.data(), Kg);
  const auto mod = [](int64_t v, int64_t m) { return ((v % m) + m) % m; };
  for (int64_t cp = cp0; cp < cp1; ++cp) {
    const int nr = static_cast<int>(std::min<int64_t>(nrmax, Cg - cp * nrmax));
    for (int64_t ph = 0; ph < std::min(g.stride_h, g.H); ++ph)
      for (int64_t phase = 0; phase < std::min(g.stride_w, g.W); ++phase) {
        const int64_t first = h0 + mod(ph - h0, g.stride_h);  // the class's first row
        if (first >= h1) continue;
        const int64_t rows = (h1 - first + g.stride_h - 1) / g.stride_h;
        const int64_t cols = (g.W - phase + g.stride_w - 1) / g.stride_w, count = rows * cols;
        int64_t nt = 0;
        for (int64_t r = 0; r < g.R; ++r)
          for (int64_t s = 0; s < g.S; ++s)
            if (mod(ph + g.pad_h - r * g.dil_h, g.stride_h) == 0 &&
                mod(phase + g.pad_w - s * g.dil_w, g.stride_w) == 0)
              taps[nt++] = r * g.S + s;
        for (int64_t t = 0; t < nt; ++t) b[t] = w_packed + (taps[t] * CP + cp) * Kg * nrmax;
        // Position j of the class: its (row, column); at(j): its panel's lanes in gx.
        const auto position = [&](int64_t j) {
          return std::pair{first + j / cols * g.stride_h, phase + j % cols * g.stride_w};
        };
        const auto at = [&](int64_t j) {
          const auto [h, w] = position(j);
          return gx + ((n * g.H + h) * g.W + w) * g.C + grp * Cg + cp * nrmax;
        };
        for (int64_t j0 = 0; j0 < count; j0 += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, count - j0));
          for (int i = 0; i < MR; ++i) {
            const auto [h, w] = position(j0 + std::min(i, mr - 1));
            for (int64_t t = 0; t < nt; ++t) {
              const int64_t hp = h + g.pad_h - taps[t] / g.S * g.dil_h;
              const int64_t wq = w + g.pad_w - taps[t] % g.S * g.dil_w;
              const int64_t p = hp / g.stride_h, q = wq / g.stride_w;  // exact where >= 0
              a[t * MR + i] = hp >= 0 && wq >= 0 && p < g.P && q < g.Q
                                  ? gy + ((n * g.P + p) * g.Q + q) * g.K + grp * Kg
                                  : zero_ws.data();
            }
          }
          const bool one_row = j0 / cols == (j0 + mr - 1) / cols;
          T* c = one_row ? at(j0) : tile_ws.data();
          const int64_t ldc = one_row ? g.stride_w * g.C : nrmax;
          if (nt == 0)  // no tap reaches these positions
            gather_micro_kernel(int64_t{0}, Kg, 0, a, MR, b, nrmax, static_cast<const T*>(nullptr),
                                c, ldc, mr, nr, false, nv);
          for_each_gather_slice(nt, Kg, [&](int64_t t0, int64_t ntap, int64_t off, int64_t d) {
            const T* piece = b[t0] + off * nrmax;  // off > 0: a piece of one tap
            gather_micro_kernel(ntap, d, off, a + t0 * MR, MR, off > 0 ? &piece : b + t0, nrmax,
                                static_cast<const T*>(nullptr), c, ldc, mr, nr, t0 > 0 || off > 0,
                                nv);
          });
          if (!one_row)
            for (int i = 0; i < mr; ++i) std::copy_n(tile_ws.data() + i * nrmax, nr, at(j0 + i));
        }
      }
  }
}

// Grad-weight of tap (r, s) for group grp, output channels [k0, k1) of the group and
// input-channel panels [cp0, cp1), summed over positions [j0, j1) of the batch in a fixed
// order and stored into gw (channels_last, [K][R][S][C/G]). A chunk of positions serves
// every panel of the range before the next is gathered, so x's rows are read whole where
// the range is all of them. (Kernel-row taps, nhwc_wgrad_taps, take
// dense_nhwc_wgrad_rows_tile.)
template <typename T>
void dense_nhwc_wgrad_tile(const ConvGeometry& g, const T* x, const T* gy, T* gw, int64_t grp,
                           int64_t tap, int64_t cp0, int64_t cp1, int64_t k0, int64_t k1,
                           int64_t j0, int64_t j1) {
  const int nv = nhwc_vectors<T>(g.C_per_group()), nrmax = nv * Vec<T>::size;
  const int64_t RS = g.R * g.S, Cg = g.C_per_group(), Kg = g.K_per_group();
  const int64_t r = tap / g.S, s = tap % g.S;
  const Workspace<const T*> b_ws(Slot::kTaps, 2 * kNhwcDepth);
  const Workspace<T> zero_ws(Slot::kRow, Cg);
  const T** runs = b_ws.data();     // the chunk's runs of the group's channels
  const T** b = runs + kNhwcDepth;  // ... from one panel's first channel on
  const bool pack = g.C * int64_t(sizeof(T)) >= kNhwcWgradPackMinRowBytes;
  const Workspace<T> panel_ws(Slot::kPackB, pack ? kNhwcDepth * nrmax : 1);
  // grad_output's rows (A) likewise, where a task serves several panels: the copy, once per
  // chunk, is shared by them all.
  const bool pack_a = cp1 - cp0 > 1 && g.K * int64_t(sizeof(T)) >= kNhwcWgradPackMinRowBytes;
  const int64_t lda_a = pack_a ? spread_ld<T>(k1 - k0) : g.K;
  const Workspace<T> a_ws(Slot::kPackA, pack_a ? kNhwcDepth * lda_a : 1);
  zero_fill(zero_ws.data(), Cg);
  T* out = gw + ((grp * Kg) * RS + tap) * Cg;  // row k of the result at out + k * RS * Cg
  if (j0 >= j1)                                // no positions: a zero sum
    for (int64_t k = k0; k < k1; ++k)
      std::fill(out + k * RS * Cg + cp0 * nrmax, out + k * RS * Cg + std::min(Cg, cp1 * nrmax),
                T(0));
  for (int64_t jc = j0; jc < j1; jc += kNhwcDepth) {
    const int64_t depth = std::min(kNhwcDepth, j1 - jc);
    if (g.pointwise_in_place()) {  // position j's run is row j of x
      for (int64_t jj = 0; jj < depth; ++jj) runs[jj] = x + (jc + jj) * g.C + grp * Cg;
    } else {
      PositionWalk at(g, jc);
      for (int64_t jj = 0; jj < depth; ++jj, at.next())
        runs[jj] = nhwc_tap_run(g, x, grp, at.n, at.p, at.q, r, s, zero_ws.data());
    }
    // Row jj of the chunk's A, output channels from k0 on.
    const T* a = gy + jc * g.K + grp * Kg + k0;
    if (pack_a) {
      for (int64_t jj = 0; jj < depth; ++jj)
        std::copy_n(a + jj * g.K, k1 - k0, a_ws.data() + jj * lda_a);
      a = a_ws.data();
    }
    for (int64_t cp = cp0; cp < cp1; ++cp) {
      const int64_t c0 = cp * nrmax;
      const int nr = static_cast<int>(std::min<int64_t>(nrmax, Cg - c0));
      if (pack) {
        for (int64_t jj = 0; jj < depth; ++jj) {
          T* row = panel_ws.data() + jj * nrmax;
          std::copy_n(runs[jj] + c0, nr, row);
          b[jj] = row;
        }
      } else {
        for (int64_t jj = 0; jj < depth; ++jj) b[jj] = runs[jj] + c0;
      }
      for (int64_t k = k0; k < k1; k += MR)
        wgrad_micro_kernel(depth, a + (k - k0), lda_a, b, out + k * RS * Cg + c0, RS * Cg,
                           static_cast<int>(std::min<int64_t>(MR, k1 - k)), nr, jc == j0, nv);
    }
  }
}

// C[0:mr, 0:nr] (+)= sum over kk < depth of a[kk][off + i] * b[kk*ldb + 0:nr]: A's columns
// gathered runs (MR of a run's values), B's rows rows of grad_output (NV vectors of output
// channels, lane-masked past nr). overwrite stores instead of adding.
template <typename T, int NV, bool kWhole>
__attribute__((noinline)) static void wgrad_rows_micro_kernel_n(int64_t depth, const T* const* a,
                                                                int64_t off, const T* b,
                                                                int64_t ldb, T* c, int64_t ldc,
                                                                int mr, int nr, bool overwrite) {
  int64_t at[MR];  // rows past mr re-read row 0 and are never stored
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) at[i] = off + (i < mr ? i : 0);
  vec_t<T> acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int h = 0; h < NV; ++h) acc[i][h] = vec_t<T>{};
  for (int64_t kk = 0; kk < depth; ++kk) {
    const T* ak = a[kk];
    vec_t<T> v[NV];
    load_wgrad_row<T, NV, kWhole>(b + kk * ldb, nr, v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const vec_t<T> ai = splat(ak[at[i]]);
#pragma GCC unroll 4
      for (int h = 0; h < NV; ++h) acc[i][h] += ai * v[h];
    }
  }
  store_register_tile<T, NV>(acc, c, ldc, mr, nr, overwrite);
}
template <typename T, int NV>
inline void wgrad_rows_micro_kernel_v(int64_t depth, const T* const* a, int64_t off, const T* b,
                                      int64_t ldb, T* c, int64_t ldc, int mr, int nr,
                                      bool overwrite) {
  if (nr == NV * Vec<T>::size)
    wgrad_rows_micro_kernel_n<T, NV, true>(depth, a, off, b, ldb, c, ldc, mr, nr, overwrite);
  else
    wgrad_rows_micro_kernel_n<T, NV, false>(depth, a, off, b, ldb, c, ldc, mr, nr, overwrite);
}
template <typename T>
inline void wgrad_rows_micro_kernel(int64_t depth, const T* const* a, int64_t off, const T* b,
                                    int64_t ldb, T* c, int64_t ldc, int mr, int nr, bool overwrite,
                                    int nv) {
  if (nv == 1)
    return wgrad_rows_micro_kernel_v<T, 1>(depth, a, off, b, ldb, c, ldc, mr, nr, overwrite);
  if (kNhwcMaxVectors < 4 || nv == 2)
    return wgrad_rows_micro_kernel_v<T, 2>(depth, a, off, b, ldb, c, ldc, mr, nr, overwrite);
  wgrad_rows_micro_kernel_v<T, kNhwcMaxVectors>(depth, a, off, b, ldb, c, ldc, mr, nr, overwrite);
}

// Kernel-row taps' grad-weight (nhwc_wgrad_taps rows) over positions [j0, j1) of the batch:
// gwt[t*S*C + u][k] = sum over those positions j of run(j, t)[u] * gy[j][k], for every tap
// t and all output channels, in a fixed order. Lanes run over output channels: a run's S*C
// values (9 to 21) fill a panel's lanes poorly, and a chunk of grad_output rows stays in
// L1 while every tap and every row of the result reads it.
template <typename T>
void dense_nhwc_wgrad_rows_tile(const ConvGeometry& g, const T* x, const T* gy, T* gwt, int64_t j0,
                                int64_t j1) {
  const NhwcTaps v = kernel_row_taps(g);
  const int nv = nhwc_vectors<T>(g.K), nrmax = nv * Vec<T>::size;
  const int64_t runs = v.taps * kNhwcDepth;
  const Workspace<const T*> a_ws(Slot::kTaps, runs);
  const Workspace<T> zero_ws(Slot::kRow, v.depth), stage_ws(Slot::kStage, runs * v.depth);
  const T** a = a_ws.data();  // a[t * kNhwcDepth + jj]: tap t's run of position jc + jj
  zero_fill(zero_ws.data(), v.depth);
  if (j0 >= j1) zero_fill(gwt, g.weight_numel());  // no positions: a zero sum
  for (int64_t jc = j0; jc < j1; jc += kNhwcDepth) {
    const int64_t depth = std::min(kNhwcDepth, j1 - jc);
    gather_kernel_rows(g, x, jc, depth, zero_ws.data(), stage_ws.data(),
                       [&](int64_t t, int64_t jj, const T* run) { a[t * kNhwcDepth + jj] = run; });
    for (int64_t t = 0; t < v.taps; ++t)
      for (int64_t u = 0; u < v.depth; u += MR)
        for (int64_t k = 0; k < g.K; k += nrmax) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, v.depth - u));
          const int nr = static_cast<int>(std::min<int64_t>(nrmax, g.K - k));
          wgrad_rows_micro_kernel(depth, a + t * kNhwcDepth, u, gy + jc * g.K + k, g.K,
                                  gwt + (t * v.depth + u) * g.K + k, g.K, mr, nr, jc == j0, nv);
        }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
