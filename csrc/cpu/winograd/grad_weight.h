// Winograd grad-weight: the adjoint of the forward. With Gy = A gy A^T per 2x2 grad_output
// tile (A = (A^T)^T),
//   dU[xi] (C x K, stored transposed) = sum over tiles V[xi] (C x tiles) * Gy[xi]^T,
//   gw = G^T dU G per (k, c).
// 16 GEMMs whose depth is the tiles (chunks of kKC, always in the same order, so the sums
// do not depend on the thread count), then one small transform per weight.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../dense/gemm.h"
#include "../runtime/workspace.h"
#include "transforms.h"

namespace fastconv {
namespace FC_ISA {

// du[xi][c][k] = sum over all tiles for input channels [c0, c1) (every output channel).
template <typename T>
void winograd_wgrad_block(const ConvGeometry& g, const T* x, const T* gy, int64_t c0, int64_t c1,
                          T* du) {
  const int64_t C = g.C, K = g.K, cb = c1 - c0, kp = round_up(K, NR<T>);
  const int64_t tiles = g.N * wino_tile_rows(g) * wino_tile_cols(g), tc_max = kKC;
  const int64_t vp_plane = cb * tc_max + kWinoPad, gp_plane = K * tc_max + kWinoPad;
  const int64_t du_plane = C * K + kWinoPad;
  // (kStage is the transforms' staging, for_each_patch_group.)
  const Workspace<T> vplain_ws(Slot::kPackA, 16 * vp_plane), gplain_ws(Slot::kTile, 16 * gp_plane);
  const Workspace<T> b_ws(Slot::kPackB, kp * tc_max);
  T *vplain = vplain_ws.data(), *gplain = gplain_ws.data(), *b = b_ws.data();
  for (int64_t t0 = 0; t0 < tiles; t0 += tc_max) {
    const int64_t t1 = std::min(tiles, t0 + tc_max), tc = t1 - t0;
    wino_input_transform(g, x, C, c0, c1, t0, t1,
                         [&](int xi, int64_t c, int64_t j, vec_t<T> v, int cnt) {
                           storeu_n(vplain + xi * vp_plane + (c - c0) * tc_max + j, v, cnt);
                         });
    wino_grad_output_transform(g, gy, 0, K, t0, t1,
                               [&](int xi, int64_t k, int64_t j, vec_t<T> v, int cnt) {
                                 storeu_n(gplain + xi * gp_plane + k * tc_max + j, v, cnt);
                               });
    for (int xi = 0; xi < 16; ++xi) {
      pack_b_rows(gplain + xi * gp_plane, tc_max, K, tc, b);
      for (int64_t k = 0; k < K; k += NR<T>)
        for (int64_t c = 0; c < cb; c += MR)
          micro_kernel(tc, vplain + xi * vp_plane + c * tc_max, tc_max, b + k * tc,
                       du + xi * du_plane + (c0 + c) * K + k, K,
                       static_cast<int>(std::min<int64_t>(MR, cb - c)),
                       static_cast<int>(std::min<int64_t>(NR<T>, K - k)), t0 == 0);
    }
  }
}

// gw[k][c] = G^T dU[.][c][k] G for input channels [c0, c1), every output channel.
template <typename T>
void winograd_wgrad_finish(const ConvGeometry& g, const T* du, T* gw, int64_t c0, int64_t c1) {
  constexpr int V = Vec<T>::size;
  const int64_t C = g.C, K = g.K, du_plane = C * K + kWinoPad;
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t k = 0; k < K; k += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, K - k));
      vec_t<T> m[16];
#pragma GCC unroll 16
      for (int xi = 0; xi < 16; ++xi) m[xi] = loadu_n(du + xi * du_plane + c * K + k, cnt);
      vec_t<T> w[V > 9 ? V : 9];  // w[r*3 + s], then transposed to one vector per k
      wino_weight_grad_tf<T>(m, w);
      if constexpr (V >= 9) {
        for (int i = 9; i < V; ++i) w[i] = vec_t<T>{};
        transpose<T>(w);
        for (int j = 0; j < cnt; ++j) storeu_n(gw + ((k + j) * C + c) * 9, w[j], 9);
      } else {
        for (int j = 0; j < cnt; ++j)
          for (int tap = 0; tap < 9; ++tap) gw[((k + j) * C + c) * 9 + tap] = w[tap][j];
      }
    }
}

}  // namespace FC_ISA
}  // namespace fastconv
