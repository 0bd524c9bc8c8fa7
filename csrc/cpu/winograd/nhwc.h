// Winograd F(2x2, 3x3) on channels_last (NHWC) activations, read and written in place. In
// NHWC a tile's 4x4 input patch is 16 runs of C channels, so the transforms run on vectors
// of channels with no transposes, and the 16 GEMMs per chunk of tiles
//
//   M[xi] (tiles x K) = V[xi] (tiles x C) * U[xi] (C x K)
//
// take V's rows as the micro-kernel's broadcast operand (read in place from the transform's
// buffer) and U packed once per call into NR-channel panels [16][K / NR][C][NR]. The
// output transform writes each tile's 2x2 outputs as rows of K channels.
//
// Grad-weight: dU[xi] (K x C) = sum over tiles Gy[xi]^T (K x tiles) * V[xi] (tiles x C), in
// chunks of tiles in a fixed order, then gw[k][r][s][c] (channels_last) = G^T dU G.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../dense/gemm.h"
#include "../dense/nhwc.h"
#include "../runtime/workspace.h"
#include "transforms.h"

namespace fastconv {
namespace FC_ISA {

// U panels [16][K / NR][C][NR] (NR = nhwc_lanes(K), zero past K) of output-channel panels
// [kp0, kp1), straight from a contiguous or (w_cl) channels_last weight: the 9 taps of V
// output channels of one input channel at a time, lanes over output channels (the transform
// acts on each lane alone, so the values are winograd_pack_weight's), each transformed
// vector stored as a run of its panel row. Through pack_weight's [16][K][C] rows the
// transformed weight went out to memory and came back to be packed: a fifth of a 512x7^2
// layer's forward at batch 8.
template <typename T>
void winograd_nhwc_pack_weight(const ConvGeometry& g, const T* w, bool w_cl, T* panels, int64_t kp0,
                               int64_t kp1) {
  constexpr int V = Vec<T>::size;
  const int64_t C = g.C, K = g.K, nrmax = nhwc_lanes<T>(K), KP = (K + nrmax - 1) / nrmax;
  const int64_t p_plane = KP * nrmax * C;
  // u: the 16 transformed vectors of input channel c, lanes over output channels k0..
  const auto store = [&](int64_t k0, int64_t c, const vec_t<T>* u) {
    T* dst = panels + (k0 / nrmax * C + c) * nrmax + k0 % nrmax;
#pragma GCC unroll 16
    for (int xi = 0; xi < 16; ++xi) storeu(dst + xi * p_plane, u[xi]);
  };
  for (int64_t k0 = kp0 * nrmax; k0 < kp1 * nrmax; k0 += V) {
    const int nk = static_cast<int>(std::clamp<int64_t>(K - k0, 0, V));
    vec_t<T> u[16];
    if (nk == 0) {  // lanes of the last panel past K
      for (int xi = 0; xi < 16; ++xi) u[xi] = vec_t<T>{};
      for (int64_t c = 0; c < C; ++c) store(k0, c, u);
      continue;
    }
    if (w_cl) {  // [K][3][3][C]: V channels of each tap transposed at once, then channel by channel
      for (int64_t c0 = 0; c0 < C; c0 += V) {
        const int nc = static_cast<int>(std::min<int64_t>(V, C - c0));
        vec_t<T> taps[9][V];  // taps[tap][j]: lanes over k of w[k][tap][c0 + j]
        for (int tap = 0; tap < 9; ++tap)
          load_transposed(taps[tap], nc, nk, w + (k0 * 9 + tap) * C + c0, 9 * C);
        for (int j = 0; j < nc; ++j) {
          vec_t<T> t[9];
#pragma GCC unroll 9
          for (int tap = 0; tap < 9; ++tap) t[tap] = taps[tap][j];
          wino_weight_tf<T>(t, u);
          store(k0, c0 + j, u);
        }
      }
      continue;
    }
    for (int64_t c = 0; c < C; ++c) {  // [K][C][3][3]: the 9 taps of V output channels
      vec_t<T> t[V > 9 ? V : 9];       // t[tap]: lanes over k
      const T* src = w + (k0 * C + c) * 9;
      if constexpr (V >= 9) {
        load_transposed(t, 9, nk, src, 9 * C);
      } else {
        for (int tap = 0; tap < 9; ++tap) {
          t[tap] = vec_t<T>{};
          for (int l = 0; l < nk; ++l) t[tap][l] = src[l * 9 * C + tap];
        }
      }
      wino_weight_tf<T>(t, u);
      store(k0, c, u);
    }
  }
}

// Tile t of the batch: image, first input row and column of its 4x4 patch (padding
// included), first output row and column.
struct WinoTile {
  int64_t n, ih, iw, p, q;
};
inline WinoTile wino_tile(const ConvGeometry& g, int64_t t) {
  const int64_t tw = wino_tile_cols(g), per_image = wino_tile_rows(g) * tw;
  const int64_t n = t / per_image, ty = (t % per_image) / tw, tx = t % tw;
  return {n, 2 * ty - g.pad_h, 2 * tx - g.pad_w, 2 * ty, 2 * tx};
}

// Rows of one tile's patch as 16 pointers (a zero row where a position lies outside).
template <typename T, int N>
inline void patch_rows(const T* x, int64_t H, int64_t W, int64_t C, int64_t n, int64_t ih,
                       int64_t iw, const T* zero, const T* (*src)[N]) {
#pragma GCC unroll 4
  for (int i = 0; i < N; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < N; ++j) {
      const int64_t h = ih + i, w = iw + j;
      src[i][j] = h >= 0 && h < H && w >= 0 && w < W ? x + ((n * H + h) * W + w) * C : zero;
    }
}

// Transformed input of tiles [t0, t0 + tiles), channels [c0, c1): v[xi][t][c - c0], planes
// v_plane apart, rows ldv apart.
template <typename T>
void wino_nhwc_input(const ConvGeometry& g, const T* x, const T* zero, int64_t t0, int64_t tiles,
                     int64_t c0, int64_t c1, T* v, int64_t v_plane, int64_t ldv) {
  constexpr int V = Vec<T>::size;
  for (int64_t t = 0; t < tiles; ++t) {
    const WinoTile tl = wino_tile(g, t0 + t);
    const T* src[4][4];
    patch_rows<T, 4>(x, g.H, g.W, g.C, tl.n, tl.ih, tl.iw, zero, src);
    for (int64_t c = c0; c < c1; c += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, c1 - c));
      vec_t<T> d[4][4], out[16];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) d[i][j] = load_lanes(src[i][j] + c, cnt);
      wino_input_tf<T>(d, out);
#pragma GCC unroll 16
      for (int xi = 0; xi < 16; ++xi)
        store_lanes(v + xi * v_plane + t * ldv + c - c0, out[xi], cnt);
    }
  }
}

// Tiles [t0, t1) of the batch: y = bias + A^T (V . U) A. panels: winograd_nhwc_pack_weight.
template <typename T>
void winograd_nhwc_fwd_tiles(const ConvGeometry& g, const T* x, const T* panels, const T* bias,
                             T* y, int64_t t0, int64_t t1) {
  constexpr int V = Vec<T>::size;
  const int nv = nhwc_vectors<T>(g.K), nrmax = nv * V;
  const int64_t C = g.C, K = g.K, tiles = t1 - t0, KP = (K + nrmax - 1) / nrmax;
  const int64_t v_plane = tiles * C + kWinoPad, m_plane = tiles * K + kWinoPad;
  const int64_t p_plane = KP * nrmax * C;
  const Workspace<T> v_ws(Slot::kPackA, 16 * v_plane), m_ws(Slot::kTile, 16 * m_plane);
  const Workspace<T> zero_ws(Slot::kRow, C);
  T *vb = v_ws.data(), *mb = m_ws.data();
  zero_fill(zero_ws.data(), C);
  wino_nhwc_input(g, x, zero_ws.data(), t0, tiles, 0, C, vb, v_plane, C);
  // The 16 GEMMs on the channels_last micro-kernel (dense/nhwc.h), V's rows gathered in
  // place, depth sliced to kKC so a B micro-panel stays in L1.
  for (int xi = 0; xi < 16; ++xi)
    for (int64_t c0 = 0; c0 < C; c0 += kKC) {
      const int64_t kc = std::min(kKC, C - c0);
      for (int64_t kp = 0; kp < KP; ++kp) {
        const T* b = panels + xi * p_plane + (kp * C + c0) * nrmax;
        const int nr = static_cast<int>(std::min<int64_t>(nrmax, K - kp * nrmax));
        for (int64_t t = 0; t < tiles; t += MR) {
          const T* rows[MR];
          for (int i = 0; i < MR; ++i) rows[i] = vb + xi * v_plane + std::min(t + i, tiles - 1) * C;
          gather_micro_kernel(int64_t{1}, kc, c0, rows, MR, &b, nrmax,
                              static_cast<const T*>(nullptr),
                              mb + xi * m_plane + t * K + kp * nrmax, K,
                              static_cast<int>(std::min<int64_t>(MR, tiles - t)), nr, c0 > 0, nv);
        }
      }
    }
  // Output transform: each tile's 2x2 outputs, V channels at a time.
  for (int64_t t = 0; t < tiles; ++t) {
    const WinoTile tl = wino_tile(g, t0 + t);
    for (int64_t k = 0; k < K; k += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, K - k));
      vec_t<T> m[16], out[2][2];
#pragma GCC unroll 16
      for (int xi = 0; xi < 16; ++xi) m[xi] = load_lanes(mb + xi * m_plane + t * K + k, cnt);
      wino_output_tf<T>(m, bias ? load_lanes(bias + k, cnt) : vec_t<T>{}, out);
#pragma GCC unroll 2
      for (int a = 0; a < 2; ++a)
#pragma GCC unroll 2
        for (int b = 0; b < 2; ++b)
          if (tl.p + a < g.P && tl.q + b < g.Q)
            store_lanes(y + ((tl.n * g.P + tl.p + a) * g.Q + tl.q + b) * K + k, out[a][b], cnt);
    }
  }
}

// dU[xi][k][c] for input channels [c0, c1) (every output channel) over every tile, in
// chunks of kKC tiles in order; the first chunk stores. du planes: K * C + kWinoPad.
template <typename T>
void winograd_nhwc_wgrad_block(const ConvGeometry& g, const T* x, const T* gy, int64_t c0,
                               int64_t c1, T* du) {
  constexpr int V = Vec<T>::size;
  const int nv = nhwc_vectors<T>(g.C), nrmax = nv * V;
  const int64_t C = g.C, K = g.K, cb = c1 - c0, tc_max = kKC;
  const int64_t tiles = g.N * wino_tile_rows(g) * wino_tile_cols(g);
  const int64_t v_plane = tc_max * cb + kWinoPad, y_plane = tc_max * K + kWinoPad;
  const int64_t du_plane = K * C + kWinoPad;
  const Workspace<T> v_ws(Slot::kPackA, 16 * v_plane), y_ws(Slot::kTile, 16 * y_plane);
  const Workspace<T> zero_ws(Slot::kRow, std::max(C, K));
  const Workspace<const T*> b_ws(Slot::kTaps, tc_max);
  T *vb = v_ws.data(), *yb = y_ws.data();
  const T** brow = b_ws.data();
  zero_fill(zero_ws.data(), std::max(C, K));
  for (int64_t t0 = 0; t0 < tiles; t0 += tc_max) {
    const int64_t tc = std::min(tc_max, tiles - t0);
    wino_nhwc_input(g, x, zero_ws.data(), t0, tc, c0, c1, vb, v_plane, cb);
    for (int64_t t = 0; t < tc; ++t) {  // Gy[xi][t][k]
      const WinoTile tl = wino_tile(g, t0 + t);
      const T* src[2][2];
      patch_rows<T, 2>(gy, g.P, g.Q, K, tl.n, tl.p, tl.q, zero_ws.data(), src);
      for (int64_t k = 0; k < K; k += V) {
        const int cnt = static_cast<int>(std::min<int64_t>(V, K - k));
        vec_t<T> d[2][2], out[16];
#pragma GCC unroll 2
        for (int i = 0; i < 2; ++i)
#pragma GCC unroll 2
          for (int j = 0; j < 2; ++j) d[i][j] = load_lanes(src[i][j] + k, cnt);
        wino_grad_output_tf<T>(d, out);
#pragma GCC unroll 16
        for (int xi = 0; xi < 16; ++xi) store_lanes(yb + xi * y_plane + t * K + k, out[xi], cnt);
      }
    }
    for (int xi = 0; xi < 16; ++xi)
      for (int64_t c = 0; c < cb; c += nrmax) {
        const int nr = static_cast<int>(std::min<int64_t>(nrmax, cb - c));
        for (int64_t t = 0; t < tc; ++t) brow[t] = vb + xi * v_plane + t * cb + c;
        for (int64_t k = 0; k < K; k += MR)
          wgrad_micro_kernel(tc, yb + xi * y_plane + k, K, brow,
                             du + xi * du_plane + k * C + c0 + c, C,
                             static_cast<int>(std::min<int64_t>(MR, K - k)), nr, t0 == 0, nv);
      }
  }
}

// gw[k][r][s][c] (channels_last) = G^T dU[.][k][c] G for output channels [k0, k1).
template <typename T>
void winograd_nhwc_wgrad_finish(const ConvGeometry& g, const T* du, T* gw, int64_t k0, int64_t k1) {
  constexpr int V = Vec<T>::size;
  const int64_t C = g.C, du_plane = g.K * C + kWinoPad;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c = 0; c < C; c += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, C - c));
      vec_t<T> m[16], w[9];
#pragma GCC unroll 16
      for (int xi = 0; xi < 16; ++xi) m[xi] = load_lanes(du + xi * du_plane + k * C + c, cnt);
      wino_weight_grad_tf<T>(m, w);
#pragma GCC unroll 9
      for (int tap = 0; tap < 9; ++tap) store_lanes(gw + (k * 9 + tap) * C + c, w[tap], cnt);
    }
}

}  // namespace FC_ISA
}  // namespace fastconv
