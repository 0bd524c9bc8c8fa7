// Channel-blocked kernels for depthwise layers (groups == in_channels == out_channels):
// one call handles V channels (one SIMD vector) of one image. Vectorised along a row, a
// 7- or 14-wide feature map leaves most lanes idle and every plane pays its own staging and
// loop overheads; vectorised across channels every FMA is full whatever the map's width.
//
// A call stages its V input planes as a zero-bordered [row][col][V] buffer through V x V
// register transposes (NCHW stays the tensor layout; no bounds checks after staging),
// computes with one vector per position and tap, and transposes results back into NCHW
// rows in registers. Large channels_last inputs go by bands of output rows instead, each
// staging every block of channels in one pass over its positions (the *_nhwc_rows
// kernels): a block at a time would read one cache line of each position, C apart.
// Strided channels_last layers (and large stride-1 3x3 ones) with few edge columns stage
// nothing: the *_nhwc_direct kernels run the same tiles on the tensors in place, every
// block of channels in turn per tile of columns, edge columns tap by tap.
//   Fprop: a tile is QB <= V output columns of one row: QB accumulators, and per tap one
//     weight vector and QB input vectors (memory operands of the FMAs).
//   Dgrad, strided: grad_output * w scattered into a zeroed staged grad_input, then
//     unstaged. (Stride 1 is this forward on grad_output with the flipped kernel.)
//   Wgrad: accumulators for up to 8 taps of one kernel row, three output columns
//     interleaved for independent FMA chains, added in a fixed order.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <array>
#include <utility>

#include "../runtime/workspace.h"
#include "staging.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
struct BlockedFwdArgs {
  int64_t R, S, row_step, col_step, sw;  // steps in elements of the input read
  // Results: NCHW planes `plane` apart, or (ld > 0) channels_last rows of ld values.
  int64_t plane, ld;
  const T* wb;  // [R*S][V]
  int nc;
  int64_t pos;  // elements between input positions: V staged, C read in place (kDirect*)
};

// Where a forward tile reads its input: a staged block (positions V apart, every lane
// valid), or channels_last x in place (positions C apart), with loads of the nc < V channels
// of a last block masked so that they never read past the tensor.
enum BlockedInput { kStaged, kDirect, kDirectMasked };

template <typename T, int M>
inline vec_t<T> blocked_load(const T* p, int nc) {
  if constexpr (M == kDirectMasked) return loadu_n(p, nc);
  return loadu_keep(p);
}

// Hides p's value from the optimiser, so that it steps p as written.
template <typename P>
inline void keep_opaque(P& p) {
#if defined(__GNUC__)
  asm("" : "+r"(p));
#endif
}

// U consecutive taps (dilation 1) of one kernel row on QB output columns of stride SW:
// output column j, tap u reads input position SW*j + u, so each distinct position is loaded
// once and feeds every (j, u) pair that reads it -- about half a load per FMA at U = 4,
// where one load per FMA left the loop bound by loads (Zen 4: one 64-byte load a cycle).
template <typename T, int QB, int SW, int U, int M>
inline void blocked_fwd_taps(vec_t<T>* acc, const T* xs, const T* ws, int64_t pos, int nc) {
  constexpr int V = Vec<T>::size;
  vec_t<T> w[U];
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u) w[u] = loadu_keep(ws + u * V);
  // In place, positions are a runtime stride apart: two pointers stepped by two positions,
  // opaque to the compiler, which would otherwise keep (and spill) one per position.
  const T* pe = xs;
  const T* po = xs + pos;
  const int64_t two = 2 * pos;
#pragma GCC unroll 64
  for (int i = 0; i < SW * (QB - 1) + U; ++i) {
    vec_t<T> v;
    if constexpr (M == kStaged) {
      v = loadu_keep(xs + i * V);
    } else {
      const T*& p = i % 2 ? po : pe;
      v = blocked_load<T, M>(p, nc);
      p += two;
      keep_opaque(p);
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const int j = (i - u) / SW;
      if (i - u >= 0 && (i - u) % SW == 0 && j < QB) acc[j] += w[u] * v;
    }
  }
}

// QB output columns of one row for V channels; SW: the column stride when known (1, 2),
// 0 for any. x0: staged input under the tile's first column; y0: output (c0, p, q0).
// The tile's QB result vectors (one per column) into y: transposed into NCHW rows, or one
// vector per channels_last position.
template <typename T, int QB>
inline void store_tile(vec_t<T>* acc, const BlockedFwdArgs<T>& a, T* y0) {
  if (a.ld == 0) return store_transposed(acc, QB, a.nc, y0, a.plane);
#pragma GCC unroll 16
  for (int j = 0; j < QB; ++j) store_lanes(y0 + j * a.ld, acc[j], a.nc);
}

template <typename T, int QB, int SW, int M>
__attribute__((noinline)) static void blocked_fwd_tile(const BlockedFwdArgs<T>& a, vec_t<T> bias,
                                                       const T* x0, T* y0) {
  constexpr int V = Vec<T>::size;
  const int64_t ps = M == kStaged ? V : a.pos;
  vec_t<T> acc[V];
#pragma GCC unroll 16
  for (int j = 0; j < V; ++j) acc[j] = j < QB ? bias : vec_t<T>{};
  if constexpr (SW > 0) {
    if (a.col_step == ps) {  // dilation 1: taps share loads
      for (int64_t r = 0; r < a.R; ++r) {
        const T* xr = x0 + r * a.row_step;
        const T* wr = a.wb + r * a.S * V;
        int64_t s = 0;
        for (; s + 4 <= a.S; s += 4)
          blocked_fwd_taps<T, QB, SW, 4, M>(acc, xr + s * ps, wr + s * V, ps, a.nc);
        switch (a.S - s) {
          case 3:
            blocked_fwd_taps<T, QB, SW, 3, M>(acc, xr + s * ps, wr + s * V, ps, a.nc);
            break;
          case 2:
            blocked_fwd_taps<T, QB, SW, 2, M>(acc, xr + s * ps, wr + s * V, ps, a.nc);
            break;
          case 1:
            blocked_fwd_taps<T, QB, SW, 1, M>(acc, xr + s * ps, wr + s * V, ps, a.nc);
            break;
          default:
            break;
        }
      }
      store_tile<T, QB>(acc, a, y0);
      return;
    }
  }
  const int64_t step = (SW ? SW : a.sw) * ps;
  for (int64_t r = 0; r < a.R; ++r) {
    const T* xr = x0 + r * a.row_step;
    const T* wr = a.wb + r * a.S * V;
    for (int64_t s = 0; s < a.S; ++s) {
      const vec_t<T> w = loadu_keep(wr + s * V);
      const T* xs = xr + s * a.col_step;
#pragma GCC unroll 16
      for (int j = 0; j < QB; ++j)
        acc[j] +=
            w * (M == kStaged ? loadu(xs + j * step) : blocked_load<T, M>(xs + j * step, a.nc));
    }
  }
  store_tile<T, QB>(acc, a, y0);
}

template <typename T, int SW, int M, int... Q>
constexpr auto blocked_fwd_tiles(std::integer_sequence<int, Q...>) {
  return std::array{&blocked_fwd_tile<T, Q + 1, SW, M>...};
}

// The tiles of QB = 1..V columns for a column stride (1, 2, any) and input M.
template <typename T, int M>
const auto& blocked_fwd_tiles_for(int64_t stride_w) {
  constexpr int V = Vec<T>::size;
  using Q = std::make_integer_sequence<int, V>;
  static constexpr auto unit = blocked_fwd_tiles<T, 1, M>(Q{});
  static constexpr auto two = blocked_fwd_tiles<T, 2, M>(Q{});
  static constexpr auto any = blocked_fwd_tiles<T, 0, M>(Q{});
  return stride_w == 1 ? unit : stride_w == 2 ? two : any;
}

// Output rows [p0, p1) of channels [c0, c0 + nc) from their staged block buf (frame f,
// holding the input rows those outputs read; y: the image, NCHW or, nhwc, channels_last).
template <typename T>
void blocked_fwd_rows(const ConvGeometry& g, const T* buf, const BlockFrame& f, const T* w,
                      const T* bias, T* y, bool nhwc, int64_t c0, int nc, int64_t p0, int64_t p1) {
  constexpr int V = Vec<T>::size;
  const Workspace<T> wb_ws(Slot::kTaps, g.R * g.S * V);
  T* wb = wb_ws.data();
  block_taps(w, g.R * g.S, c0, nc, wb);
  vec_t<T> bv{};
  for (int c = 0; c < nc; ++c) bv[c] = bias ? bias[c0 + c] : T(0);
  const BlockedFwdArgs<T> a{
      g.R, g.S, g.dil_h * f.Wb * V, g.dil_w * V, g.stride_w, g.P * g.Q, nhwc ? g.K : 0, wb, nc, V};
  const auto& tiles = blocked_fwd_tiles_for<T, kStaged>(g.stride_w);
  for (int64_t p = p0; p < p1; ++p) {
    const T* xrow = buf + (p - p0) * g.stride_h * f.Wb * V;
    for (int64_t q = 0; q < g.Q; q += V) {
      const int qb = static_cast<int>(std::min<int64_t>(V, g.Q - q));
      T* y0 = nhwc ? y + (p * g.Q + q) * g.K + c0 : y + c0 * g.P * g.Q + p * g.Q + q;
      tiles[qb - 1](a, bv, xrow + q * g.stride_w * V, y0);
    }
  }
}

// Forward for channels [c0, c0 + V) of one image (x, y: the image, NCHW or, nhwc, both
// channels_last; w: [C][R*S]; bias: [C] or null).
template <typename T>
void blocked_fwd(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, bool nhwc,
                 int64_t c0) {
  constexpr int V = Vec<T>::size;
  const int nc = static_cast<int>(std::min<int64_t>(V, g.C - c0));
  const BlockFrame f = input_frame(g);
  const Workspace<T> buf_ws(Slot::kStage, f.Hb * f.Wb * V);
  stage_input(g, x, nhwc, c0, nc, f, buf_ws.data());
  blocked_fwd_rows(g, buf_ws.data(), f, w, bias, y, nhwc, c0, nc, 0, g.P);
}

// Channels_last forward of output rows [p0, p1) of one image, every channel: the input rows
// they read are staged for all blocks of channels in one pass that reads each position's
// channels contiguously (one block at a time reads one line of each position, C apart:
// the prefetchers do not follow, and at batch 8 the loads miss to memory).
template <typename T>
void blocked_fwd_nhwc_rows(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                           int64_t p0, int64_t p1) {
  constexpr int V = Vec<T>::size;
  const int64_t blocks = (g.C + V - 1) / V;
  const BlockFrame f = input_frame(g, p0, p1);
  const int64_t block = f.Hb * f.Wb * V;
  const Workspace<T> buf_ws(Slot::kStage, blocks * block);
  T* buf = buf_ws.data();
  stage_nhwc_blocks(g, x, f, blocks, buf);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int nc = static_cast<int>(std::min<int64_t>(V, g.C - blk * V));
    blocked_fwd_rows(g, buf + blk * block, f, w, bias, y, true, blk * V, nc, p0, p1);
  }
}

// The taps of output position (p, q) that fall inside the image, over kernel rows `rows`
// (those inside the height): fn(tap r*S + s, offset of its input position in x). An edge
// column of a padded layer sums or accumulates its taps one by one so.
template <typename Fn>
inline void for_each_tap_inside(const ConvGeometry& g, int64_t p, Range rows, int64_t q, Fn&& fn) {
  for (int64_t r = rows.lo; r < rows.hi; ++r)
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw = g.in_col(q, s);
      if (iw >= 0 && iw < g.W) fn(r * g.S + s, (g.in_row(p, r) * g.W + iw) * g.C);
    }
}

// Edge column q of output row p: acc = bias + the sum of w[r][s] * x over its taps inside
// the image.
template <typename T>
void blocked_fwd_edge_column(const ConvGeometry& g, const T* x, const T* wb, vec_t<T> bias, int nc,
                             int64_t p, Range rows, int64_t q, T* y0) {
  constexpr int V = Vec<T>::size;
  vec_t<T> acc = bias;
  for_each_tap_inside(g, p, rows, q, [&](int64_t tap, int64_t at) {
    acc += loadu(wb + tap * V) * load_lanes(x + at, nc);
  });
  store_lanes(y0, acc, nc);
}

// Channels_last forward of output rows [p0, p1) of one image, every channel, read in place
// (nothing staged). A row's input rows (all channels) stay in L2 while it is computed, and
// x is read position after position: each tile of columns runs every block of channels in
// turn. Interior columns (ConvGeometry::interior_cols) run the tiles above on x itself,
// positions C apart, over the kernel rows inside the image; the edge columns of a padded
// layer sum their valid taps one by one (blocked::nhwc_in_place keeps them few).
template <typename T>
void blocked_fwd_nhwc_direct(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                             int64_t p0, int64_t p1) {
  constexpr int V = Vec<T>::size;
  const int64_t blocks = (g.C + V - 1) / V, RS = g.R * g.S;
  const Workspace<T> wb_ws(Slot::kTaps, blocks * RS * V);
  T* wb = wb_ws.data();  // block b's taps at wb + b * V * RS
  for (int64_t blk = 0; blk < blocks; ++blk)
    block_taps(w, RS, blk * V, static_cast<int>(std::min<int64_t>(V, g.C - blk * V)),
               wb + blk * RS * V);
  const Range cols = g.interior_cols();
  const auto& full = blocked_fwd_tiles_for<T, kDirect>(g.stride_w);
  const auto& masked = blocked_fwd_tiles_for<T, kDirectMasked>(g.stride_w);
  // The bias of every block, zero past C.
  const Workspace<T> bias_ws(Slot::kRow, blocks * V);
  T* bias_v = bias_ws.data();
  for (int64_t c = 0; c < blocks * V; ++c) bias_v[c] = bias && c < g.C ? bias[c] : T(0);
  for (int64_t p = p0; p < p1; ++p) {
    const Range rows = valid_out_range(g.in_row(p, 0), g.dil_h, g.H, g.R);
    T* yrow = y + p * g.Q * g.K;
    const T* xrow = x + g.in_row(p, rows.lo) * g.W * g.C;
    const auto edge = [&](int64_t q) {
      for (int64_t c0 = 0; c0 < g.C; c0 += V)
        blocked_fwd_edge_column(g, x + c0, wb + c0 * RS, loadu(bias_v + c0),
                                static_cast<int>(std::min<int64_t>(V, g.C - c0)), p, rows, q,
                                yrow + q * g.K + c0);
    };
    for (int64_t q = 0; q < cols.lo; ++q) edge(q);
    // Over the kernel rows inside the image; per block, its taps of those rows.
    const int64_t row_step = g.dil_h * g.W * g.C, col_step = g.dil_w * g.C;
    BlockedFwdArgs<T> a{rows.hi - rows.lo, g.S, row_step, col_step, g.stride_w, 0, g.K, {}, V, g.C};
    for (int64_t q = cols.lo; q < cols.hi; q += V) {
      const int qb = static_cast<int>(std::min<int64_t>(V, cols.hi - q));
      const T* xq = xrow + g.in_col(q, 0) * g.C;
      for (int64_t c0 = 0; c0 < g.C; c0 += V) {
        a.nc = static_cast<int>(std::min<int64_t>(V, g.C - c0));
        a.wb = wb + c0 * RS + rows.lo * g.S * V;
        (a.nc == V ? full : masked)[qb - 1](a, loadu(bias_v + c0), xq + c0, yrow + q * g.K + c0);
      }
    }
    for (int64_t q = cols.hi; q < g.Q; ++q) edge(q);
  }
}

// Kernel taps of a strided grad-input's phase: the input positions h with (h + pad) mod
// stride == phase read the taps phase, phase + stride, ... (count of them) of that
// dimension, and grad_output index (h + pad - tap) / stride; first: how many taps of the
// dimension come before the phase's (phases in order).
struct DgradPhase {
  int64_t count, first;
};
inline DgradPhase dgrad_phase(int64_t taps, int64_t stride, int64_t phase) {
  const auto of = [&](int64_t a) { return a < taps ? (taps - a + stride - 1) / stride : 0; };
  int64_t first = 0;
  for (int64_t a = 0; a < phase; ++a) first += of(a);
  return {of(phase), first};
}

// Where the reversed taps of row phase ra and column phase cb start among a block's taps
// (blocked_dgrad_nhwc_direct: [R*S] plain taps, then the phases' in order), in taps.
inline int64_t dgrad_phase_taps(const ConvGeometry& g, const DgradPhase& ra, const DgradPhase& cb) {
  return g.R * g.S + ra.first * g.S + ra.count * cb.first;
}

// Input position (ih, iw)'s grad-input: its valid taps summed one by one (positions whose
// taps reach past grad_output's edges). wb: the block's taps [R*S][V].
template <typename T>
void blocked_dgrad_edge_position(const ConvGeometry& g, const T* gy, const T* wb, int nc,
                                 int64_t ih, int64_t iw, T* dst) {
  constexpr int V = Vec<T>::size;
  vec_t<T> acc{};
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ph = ih + g.pad_h - r * g.dil_h;
    if (ph < 0 || ph % g.stride_h != 0 || ph / g.stride_h >= g.P) continue;
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t pw = iw + g.pad_w - s * g.dil_w;
      if (pw < 0 || pw % g.stride_w != 0 || pw / g.stride_w >= g.Q) continue;
      const T* src = gy + (ph / g.stride_h * g.Q + pw / g.stride_w) * g.K;
      acc += loadu(wb + (r * g.S + s) * V) * load_lanes(src, nc);
    }
  }
  store_lanes(dst, acc, nc);
}

// Channels_last grad-input of a strided layer (dilation 1), input rows [h0, h1) of one
// image, every channel, written in place: nothing staged, nothing zeroed first. The
// positions of one phase ((h + pad) mod stride along each dimension) read one phase's taps;
// along a row, stride_w apart, they are a stride-1 correlation of grad_output's rows with
// those taps in reverse order, which the forward tiles run on grad_output itself (positions
// K apart, results stride_w positions apart). Positions whose taps reach past grad_output's
// edges sum theirs one by one.
template <typename T>
void blocked_dgrad_nhwc_direct(const ConvGeometry& g, const T* gy, const T* w, T* gx, int64_t h0,
                               int64_t h1) {
  constexpr int V = Vec<T>::size;
  const int64_t blocks = (g.C + V - 1) / V, RS = g.R * g.S, sh = g.stride_h, sw = g.stride_w;
  // Per block: its taps [R*S][V] (for the edges), then every phase's reversed taps
  // [rows][cols][V], row phase by row phase, column phase by column phase.
  const Workspace<T> wb_ws(Slot::kTaps, blocks * 2 * RS * V);
  T* wb = wb_ws.data();
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int nc = static_cast<int>(std::min<int64_t>(V, g.C - blk * V));
    T* taps = wb + blk * 2 * RS * V;
    block_taps(w, RS, blk * V, nc, taps);
    for (int64_t a = 0; a < sh; ++a) {
      const DgradPhase ra = dgrad_phase(g.R, sh, a);
      for (int64_t b = 0; b < sw; ++b) {
        const DgradPhase cb = dgrad_phase(g.S, sw, b);
        T* dst = taps + dgrad_phase_taps(g, ra, cb) * V;
        for (int64_t i = 0; i < ra.count; ++i)
          for (int64_t k = 0; k < cb.count; ++k) {
            const int64_t r = a + (ra.count - 1 - i) * sh, s = b + (cb.count - 1 - k) * sw;
            std::copy_n(taps + (r * g.S + s) * V, V, dst + (i * cb.count + k) * V);
          }
      }
    }
  }
  const auto& full = blocked_fwd_tiles_for<T, kDirect>(1);
  const auto& masked = blocked_fwd_tiles_for<T, kDirectMasked>(1);
  for (int64_t ih = h0; ih < h1; ++ih) {
    const int64_t a = (ih + g.pad_h) % sh;
    const DgradPhase ra = dgrad_phase(g.R, sh, a);
    // Row i of the phase's taps reads grad_output row p0 + i (those inside: rows).
    const int64_t p0 = (ih + g.pad_h - a) / sh - (ra.count - 1);
    const Range rows = valid_out_range(p0, 1, g.P, ra.count);
    T* xrow = gx + ih * g.W * g.C;
    for (int64_t b = 0; b < sw; ++b) {
      const DgradPhase cb = dgrad_phase(g.S, sw, b);
      // Columns iw = m * sw + b - pad_w of the phase, m in [m_lo, m_hi); column k of its
      // taps reads grad_output column m - (count - 1) + k: all inside from m_in_lo on.
      const int64_t m_lo = ceil_div(g.pad_w - b, sw),
                    m_hi = floor_div(g.W - 1 + g.pad_w - b, sw) + 1;
      const int64_t m_in_lo = std::min(m_hi, std::max(m_lo, cb.count - 1));
      const int64_t m_in_hi = std::max(m_in_lo, std::min(m_hi, g.Q));
      const auto edge = [&](int64_t m) {
        const int64_t iw = m * sw + b - g.pad_w;
        for (int64_t c0 = 0; c0 < g.C; c0 += V)
          blocked_dgrad_edge_position(g, gy + c0, wb + c0 * 2 * RS,
                                      static_cast<int>(std::min<int64_t>(V, g.C - c0)), ih, iw,
                                      xrow + iw * g.C + c0);
      };
      for (int64_t m = m_lo; m < m_in_lo; ++m) edge(m);
      BlockedFwdArgs<T> t{rows.hi - rows.lo, cb.count, g.Q * g.K, g.K, 1, 0, sw * g.C, {}, V, g.K};
      const T* src = gy + (p0 + rows.lo) * g.Q * g.K;
      for (int64_t m = m_in_lo; m < m_in_hi; m += V) {
        const int qb = static_cast<int>(std::min<int64_t>(V, m_in_hi - m));
        const T* sq = src + (m - (cb.count - 1)) * g.K;
        T* dq = xrow + (m * sw + b - g.pad_w) * g.C;
        for (int64_t c0 = 0; c0 < g.C; c0 += V) {
          t.nc = static_cast<int>(std::min<int64_t>(V, g.C - c0));
          t.wb = wb + c0 * 2 * RS + (dgrad_phase_taps(g, ra, cb) + rows.lo * cb.count) * V;
          (t.nc == V ? full : masked)[qb - 1](t, vec_t<T>{}, sq + c0, dq + c0);
        }
      }
      for (int64_t m = m_in_hi; m < m_hi; ++m) edge(m);
    }
  }
}

// Grad-input of a strided layer for channels [c0, c0 + V) of one image: every grad_output
// position adds gy * w[r, s] to its R x S window of a zeroed staged grad-input. The inner
// loop runs over output columns of one tap, whose targets never overlap (stride apart).
template <typename T>
void blocked_dgrad(const ConvGeometry& g, const T* gy, const T* w, T* gx, bool nhwc, int64_t c0) {
  constexpr int V = Vec<T>::size;
  const int nc = static_cast<int>(std::min<int64_t>(V, g.C - c0));
  const BlockFrame f = input_frame(g);
  const Workspace<T> buf_ws(Slot::kStage, f.Hb * f.Wb * V), wb_ws(Slot::kTaps, g.R * g.S * V);
  const Workspace<T> gyb_ws(Slot::kStage2, g.P * g.Q * V);
  T *buf = buf_ws.data(), *wb = wb_ws.data(), *gyb = gyb_ws.data();
  stage_grad_output(g, gy, nhwc, c0, nc, gyb);
  block_taps(w, g.R * g.S, c0, nc, wb);
  std::fill_n(buf, f.Hb * f.Wb * V, T(0));
  const int64_t col = g.stride_w * V;
  for (int64_t p = 0; p < g.P; ++p) {
    const T* gr = gyb + p * g.Q * V;
    for (int64_t r = 0; r < g.R; ++r) {
      T* xr = buf + (p * g.stride_h + r * g.dil_h) * f.Wb * V;
      for (int64_t s = 0; s < g.S; ++s) {
        const vec_t<T> wv = loadu(wb + (r * g.S + s) * V);
        T* xs = xr + s * g.dil_w * V;
        for (int64_t q = 0; q < g.Q; ++q)
          storeu(xs + q * col, loadu(xs + q * col) + loadu(gr + q * V) * wv);
      }
    }
  }
  unstage_block(buf, f, nc, g.H, g.W, gx + c0 * (nhwc ? 1 : g.H * g.W), g.H * g.W, nhwc, g.C);
}

// Where a grad-weight kernel reads x and grad_output: staged (positions V apart), or
// channels_last tensors in place (positions xpos and gpos apart, a partial last block's
// lanes loaded masked), as the forward tiles (BlockedInput).
struct WgradSteps {
  int64_t xpos, gpos, g_row;  // g_row: between grad_output rows
  int nc;
};

// QU output columns (q, q+1, ...) against SB taps of one kernel row: a[u][s] += gy(q + u) *
// x(SW*u + s). With SW known and dilation 1, positions shared by several (u, s) pairs are
// loaded once, as in blocked_fwd_taps; otherwise one load per FMA at stride `col`/`tap`.
template <typename T, int QU, int SB, int SW, int M>
inline void blocked_wgrad_step(vec_t<T> (*a)[SB], const T* g, const T* x, int64_t col, int64_t tap,
                               const WgradSteps& st) {
  constexpr int V = Vec<T>::size;
  vec_t<T> gv[QU];
#pragma GCC unroll 4
  for (int u = 0; u < QU; ++u)
    gv[u] = M == kStaged ? loadu_keep(g + u * V) : blocked_load<T, M>(g + u * st.gpos, st.nc);
  if constexpr (SW > 0) {
    const T* pe = x;  // in place: stepped as in blocked_fwd_taps
    const T* po = x + st.xpos;
#pragma GCC unroll 32
    for (int i = 0; i < SW * (QU - 1) + SB; ++i) {
      vec_t<T> v;
      if constexpr (M == kStaged) {
        v = loadu_keep(x + i * V);
      } else {
        const T*& p = i % 2 ? po : pe;
        v = blocked_load<T, M>(p, st.nc);
        p += 2 * st.xpos;
        keep_opaque(p);
      }
#pragma GCC unroll 4
      for (int u = 0; u < QU; ++u) {
        const int s = i - SW * u;
        if (s >= 0 && s < SB) a[u][s] += gv[u] * v;
      }
    }
  } else {
#pragma GCC unroll 4
    for (int u = 0; u < QU; ++u)
#pragma GCC unroll 8
      for (int s = 0; s < SB; ++s)
        a[u][s] += gv[u] * (M == kStaged ? loadu(x + u * col + s * tap)
                                         : blocked_load<T, M>(x + u * col + s * tap, st.nc));
  }
}

// out[s] += sum over P rows of gy(p, q) * x(p*sh + row, q*sw + s*dw), s < SB, with three
// output columns in flight (3*SB FMA chains) added in a fixed order. SW > 0: the column
// stride, dilation 1; SW == 0: any.
template <typename T, int SB, int SW, int M>
__attribute__((noinline)) static void blocked_wgrad_taps(const T* x0, const T* gyb, int64_t P,
                                                         int64_t Q, int64_t x_row, int64_t x_col,
                                                         int64_t tap_step, const WgradSteps& st,
                                                         T* out) {
  constexpr int V = Vec<T>::size, QU = 3;
  vec_t<T> a[QU][SB];
#pragma GCC unroll 4
  for (int u = 0; u < QU; ++u)
#pragma GCC unroll 8
    for (int s = 0; s < SB; ++s) a[u][s] = vec_t<T>{};
  for (int64_t p = 0; p < P; ++p) {
    const T* gr = gyb + p * st.g_row;
    const T* xr = x0 + p * x_row;
    int64_t q = 0;
    for (; q + QU <= Q; q += QU)
      blocked_wgrad_step<T, QU, SB, SW, M>(a, gr + q * st.gpos, xr + q * x_col, x_col, tap_step,
                                           st);
    for (; q < Q; ++q)
      blocked_wgrad_step<T, 1, SB, SW, M>(a, gr + q * st.gpos, xr + q * x_col, x_col, tap_step, st);
  }
#pragma GCC unroll 8
  for (int s = 0; s < SB; ++s)
    storeu(out + s * V, loadu(out + s * V) + ((a[0][s] + a[1][s]) + a[2][s]));
}

template <typename T, int SW, int M, int... S>
constexpr auto blocked_wgrad_kernels(std::integer_sequence<int, S...>) {
  return std::array{&blocked_wgrad_taps<T, S + 1, SW, M>...};
}

// Taps per call of the grad-weight kernels (a kernel row's, in chunks).
constexpr int kWgradMaxTaps = 8;
// The kernels of 1..kWgradMaxTaps taps for a layer's column stride and dilation.
template <typename T, int M>
const auto& blocked_wgrad_kernels_for(const ConvGeometry& g) {
  using Taps = std::make_integer_sequence<int, kWgradMaxTaps>;
  static constexpr auto unit = blocked_wgrad_kernels<T, 1, M>(Taps{});
  static constexpr auto two = blocked_wgrad_kernels<T, 2, M>(Taps{});
  static constexpr auto any = blocked_wgrad_kernels<T, 0, M>(Taps{});
  return g.dil_w != 1 ? any : g.stride_w == 1 ? unit : g.stride_w == 2 ? two : any;
}

// out[r*S + s][V] += the grad-weight of `rows` output rows from their staged input buf
// (frame f) and grad_output gyb (rows x Q x V), in a fixed order.
template <typename T>
void blocked_wgrad_rows(const ConvGeometry& g, const T* buf, const BlockFrame& f, const T* gyb,
                        int64_t rows, T* out) {
  constexpr int V = Vec<T>::size;
  const auto& kernels = blocked_wgrad_kernels_for<T, kStaged>(g);
  const WgradSteps st{V, V, g.Q * V, V};
  // Bands of output rows small enough that a band's grad_output and the input rows one
  // kernel row reads stay in L1 across all the taps: streamed from L2 once per tap chunk,
  // the loop ran at under half an FMA a cycle (13x13 kernels).
  const int64_t band = std::max<int64_t>(1, 128 / g.Q);
  for (int64_t p0 = 0; p0 < rows; p0 += band)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s0 = 0; s0 < g.S; s0 += kWgradMaxTaps) {
        const int sb = static_cast<int>(std::min<int64_t>(kWgradMaxTaps, g.S - s0));
        const T* x0 = buf + ((p0 * g.stride_h + r * g.dil_h) * f.Wb + s0 * g.dil_w) * V;
        kernels[sb - 1](x0, gyb + p0 * g.Q * V, std::min(band, rows - p0), g.Q,
                        g.stride_h * f.Wb * V, g.stride_w * V, g.dil_w * V, st,
                        out + (r * g.S + s0) * V);
      }
}

// Grad-weight partial of one image for channels [c0, c0 + V): out[r*S + s][V].
template <typename T>
void blocked_wgrad(const ConvGeometry& g, const T* x, const T* gy, T* out, bool nhwc, int64_t c0) {
  constexpr int V = Vec<T>::size;
  const int nc = static_cast<int>(std::min<int64_t>(V, g.C - c0));
  const BlockFrame f = input_frame(g);
  const Workspace<T> buf_ws(Slot::kStage, f.Hb * f.Wb * V), gyb_ws(Slot::kStage2, g.P * g.Q * V);
  stage_input(g, x, nhwc, c0, nc, f, buf_ws.data());
  stage_grad_output(g, gy, nhwc, c0, nc, gyb_ws.data());
  std::fill_n(out, g.R * g.S * V, T(0));
  blocked_wgrad_rows(g, buf_ws.data(), f, gyb_ws.data(), g.P, out);
}

// Channels_last grad-weight of output rows [p0, p1) of one image, every channel, added into
// out[C / V][R*S][V], reading x and grad_output in place (nothing staged): per output row,
// tiles of interior columns (every tap inside the width) run every block and kernel row in
// turn on the kernels above; edge columns add their valid taps one by one.
template <typename T>
void blocked_wgrad_nhwc_direct(const ConvGeometry& g, const T* x, const T* gy, T* out, int64_t p0,
                               int64_t p1) {
  constexpr int V = Vec<T>::size;
  constexpr int64_t kTile = 16;  // columns per call: x's and grad_output's lines stay in L1
  const int64_t RS = g.R * g.S;
  const Range cols = g.interior_cols();
  const auto& full = blocked_wgrad_kernels_for<T, kDirect>(g);
  const auto& masked = blocked_wgrad_kernels_for<T, kDirectMasked>(g);
  for (int64_t p = p0; p < p1; ++p) {
    const Range rows = valid_out_range(g.in_row(p, 0), g.dil_h, g.H, g.R);
    const T* gyrow = gy + p * g.Q * g.K;
    const auto edge = [&](int64_t q) {
      for (int64_t c0 = 0; c0 < g.C; c0 += V) {
        const int nc = static_cast<int>(std::min<int64_t>(V, g.C - c0));
        const vec_t<T> gv = load_lanes(gyrow + q * g.K + c0, nc);
        T* o = out + c0 * RS;
        for_each_tap_inside(g, p, rows, q, [&](int64_t tap, int64_t at) {
          storeu(o + tap * V, loadu(o + tap * V) + gv * load_lanes(x + at + c0, nc));
        });
      }
    };
    for (int64_t q = 0; q < cols.lo; ++q) edge(q);
    for (int64_t q0 = cols.lo; q0 < cols.hi; q0 += kTile) {
      const int64_t qn = std::min(kTile, cols.hi - q0);
      for (int64_t c0 = 0; c0 < g.C; c0 += V) {
        const WgradSteps st{g.C, g.K, 0, static_cast<int>(std::min<int64_t>(V, g.C - c0))};
        const auto& kernels = st.nc == V ? full : masked;
        for (int64_t r = rows.lo; r < rows.hi; ++r)
          for (int64_t s0 = 0; s0 < g.S; s0 += kWgradMaxTaps) {
            const int sb = static_cast<int>(std::min<int64_t>(kWgradMaxTaps, g.S - s0));
            const T* x0 = x + (g.in_row(p, r) * g.W + g.in_col(q0, s0)) * g.C + c0;
            kernels[sb - 1](x0, gyrow + q0 * g.K + c0, 1, qn, 0, g.stride_w * g.C, g.dil_w * g.C,
                            st, out + c0 * RS + (r * g.S + s0) * V);
          }
      }
    }
    for (int64_t q = cols.hi; q < g.Q; ++q) edge(q);
  }
}

// Channels_last grad-weight of output rows [p0, p1) of one image, every channel, added into
// out[C / V][R*S][V]: x's and grad_output's rows staged for all blocks in one pass each
// (as blocked_fwd_nhwc_rows).
template <typename T>
void blocked_wgrad_nhwc_rows(const ConvGeometry& g, const T* x, const T* gy, T* out, int64_t p0,
                             int64_t p1) {
  constexpr int V = Vec<T>::size;
  const int64_t blocks = (g.C + V - 1) / V, rows = p1 - p0;
  const BlockFrame f = input_frame(g, p0, p1);
  const int64_t block = f.Hb * f.Wb * V, gblock = rows * g.Q * V;
  const Workspace<T> buf_ws(Slot::kStage, blocks * block), gyb_ws(Slot::kStage2, blocks * gblock);
  T *buf = buf_ws.data(), *gyb = gyb_ws.data();
  stage_nhwc_blocks(g, x, f, blocks, buf);
  stage_nhwc_grad_output_blocks(g, gy + p0 * g.Q * g.K, rows * g.Q, blocks, gyb);
  for (int64_t blk = 0; blk < blocks; ++blk)
    blocked_wgrad_rows(g, buf + blk * block, f, gyb + blk * gblock, rows,
                       out + blk * g.R * g.S * V);
}

}  // namespace FC_ISA
}  // namespace fastconv
