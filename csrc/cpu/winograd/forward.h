// Winograd F(2x2, 3x3) for dense 3x3 stride-1 layers (Lavin & Gray, CVPR 2016): each 2x2
// output tile is A^T [ (G g G^T) . (B^T d B) ] A for its 4x4 input patch d, so the
// multiply-adds happen in 16 transformed positions xi as 16 independent GEMMs
//
//   M[xi] (K x tiles) = U[xi] (K x C) * V[xi] (C x tiles),
//
// 16 multiplies per 4 outputs and channel instead of 36: 2.25x fewer than direct. The GEMMs
// run on dense/gemm.h's micro-kernel (U packed once per call into MR panels, V written by
// the input transform straight into NR-column panels). A call covers a chunk of tiles that
// may span tile rows and images, so 7x7 maps still fill whole panels. The transforms only
// add and subtract (G halves), so float32 error stays within about twice the direct sum's.
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../dense/gemm.h"
#include "../runtime/workspace.h"
#include "transforms.h"

namespace fastconv {
namespace FC_ISA {

// U[xi] = G g G^T for output channels [m0, m1) as [xi][K][C] rows (planes of
// round_up(K, MR) * C + kWinoPad; the GEMMs read the rows in place): V input channels at a
// time, the 3x3 taps transposed into vectors (or, from a channels_last weight, loaded as
// they are).
template <typename T>
void winograd_pack_weight(const ConvGeometry& g, const T* w, bool w_cl, T* packed, int64_t m0,
                          int64_t m1) {
  constexpr int V = Vec<T>::size;
  const int64_t C = g.C, Kp = round_up(g.K, MR), rows = m1 - m0, u_plane = Kp * C + kWinoPad;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < C; c += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, C - c));
      vec_t<T> t[V > 9 ? V : 9];  // t[r*3 + s]: tap (r, s) of channels c..c+cnt
      const T* src = w + ((m0 + i) * C + c) * 9;
      if (w_cl) {
        for (int tap = 0; tap < 9; ++tap)
          t[tap] = load_lanes(w + ((m0 + i) * 9 + tap) * C + c, cnt);
      } else if constexpr (V >= 9) {
        load_transposed(t, 9, cnt, src, 9);
      } else {
        for (int tap = 0; tap < 9; ++tap) {
          t[tap] = vec_t<T>{};
          for (int l = 0; l < cnt; ++l) t[tap][l] = src[l * 9 + tap];
        }
      }
      vec_t<T> u[16];
      wino_weight_tf<T>(t, u);
#pragma GCC unroll 16
      for (int xi = 0; xi < 16; ++xi)
        storeu_n(packed + xi * u_plane + (m0 + i) * C + c, u[xi], cnt);
    }
}

// Tiles [t0, t1) of the layer (numbered image by image, row by row):
// y = bias + A^T (U . V) A. packed_u from winograd_pack_weight.
template <typename T>
void winograd_fwd_tile(const ConvGeometry& g, const T* x, const T* packed_u, const T* bias, T* y,
                       int64_t t0, int64_t t1) {
  constexpr int V = Vec<T>::size;
  const int64_t C = g.C, K = g.K, Kp = round_up(K, MR);
  const int64_t tiles = t1 - t0, tp = round_up(tiles, NR<T>), panels = tp / NR<T>;
  const int64_t v_plane = panels * C * NR<T> + kWinoPad, m_plane = K * tp + kWinoPad;
  const int64_t u_plane = Kp * C + kWinoPad;
  // mb: + V for the last row's whole-vector reads.
  const Workspace<T> vb_ws(Slot::kPackB, 16 * v_plane), mb_ws(Slot::kTile, 16 * m_plane + V);
  T *vb = vb_ws.data(), *mb = mb_ws.data();

  // Input transform: V[xi][c][tile] = (B^T d B)[xi], straight into NR-column panels.
  wino_input_transform(g, x, C, 0, C, t0, t1,
                       [&](int xi, int64_t c, int64_t j, vec_t<T> v, int cnt) {
                         put_panel_lanes(vb + xi * v_plane, C, c, j, v, cnt);
                       });

  // The 16 GEMMs, depth sliced to kKC so a B micro-panel stays in L1 (as in dense.h).
  // The GEMMs store every row and column of M; zero what the output transform's whole
  // vectors read past them.
  for (int xi = 0; xi < 16; ++xi) std::fill_n(mb + xi * m_plane + K * tp, kWinoPad, T(0));
  std::fill_n(mb + 16 * m_plane, V, T(0));
  for (int xi = 0; xi < 16; ++xi)
    for (int64_t c0 = 0; c0 < C; c0 += kKC) {
      const int64_t kc = std::min(kKC, C - c0);
      for (int64_t jp = 0; jp < panels; ++jp) {
        const T* b = vb + xi * v_plane + (jp * C + c0) * NR<T>;
        for (int64_t m = 0; m < K; m += MR)
          micro_kernel(kc, packed_u + xi * u_plane + m * C + c0, C, b,
                       mb + xi * m_plane + m * tp + jp * NR<T>, tp,
                       static_cast<int>(std::min<int64_t>(MR, K - m)), NR<T>, c0 == 0);
      }
    }

  // Output transform: y = A^T M A (+ bias), two output rows per tile row.
  for_each_tile_run(g, t0, t1, [&](int64_t n, int64_t ty, int64_t txa, int64_t txb, int64_t j0) {
    for (int64_t k = 0; k < K; ++k) {
      const vec_t<T> bv = splat(bias ? bias[k] : T(0));
      T* yk = y + (n * K + k) * g.P * g.Q;
      for (int64_t off = 0; off < txb - txa; off += V) {
        const int cnt = static_cast<int>(std::min<int64_t>(V, txb - txa - off));
        vec_t<T> m[16];
#pragma GCC unroll 16
        for (int xi = 0; xi < 16; ++xi) m[xi] = loadu(mb + xi * m_plane + k * tp + j0 + off);
        vec_t<T> out[2][2];
        wino_output_tf<T>(m, bv, out);
        const int64_t q0 = 2 * (txa + off);
        const int64_t ncols = std::min<int64_t>(2 * cnt, g.Q - q0);
#pragma GCC unroll 2
        for (int a = 0; a < 2; ++a) {
          const int64_t p = 2 * ty + a;
          if (p >= g.P) break;
          vec_t<T> lo, hi;
          interleave<T>(out[a][0], out[a][1], &lo, &hi);
          T* dst = yk + p * g.Q + q0;
          storeu_n(dst, lo, static_cast<int>(std::min<int64_t>(V, ncols)));
          if (ncols > V) storeu_n(dst + V, hi, static_cast<int>(ncols - V));
        }
      }
    }
  });
}

}  // namespace FC_ISA
}  // namespace fastconv
