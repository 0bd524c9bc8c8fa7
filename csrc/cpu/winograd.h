// Winograd F(2x2, 3x3) for dense 3x3 stride-1 layers (Lavin & Gray, CVPR 2016): each 2x2
// output tile is A^T [ (G g G^T) . (B^T d B) ] A for its 4x4 input patch d, so the
// multiply-adds happen in 16 transformed positions xi as 16 independent GEMMs
//
//   M[xi] (K x tiles) = U[xi] (K x C) * V[xi] (C x tiles),
//
// 16 multiplies per 4 outputs and channel instead of 36: 2.25x fewer than direct. The GEMMs
// run on dense.h's packed micro-kernel (U packed once per call into MR panels, V written by
// the input transform straight into NR-column panels). A call covers a chunk of tiles that
// may span tile rows and images, so 7x7 maps still fill whole panels. The transforms only
// add and subtract (G halves), so float32 error stays within about twice the direct sum's.
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// Included by the per-ISA translation units after vec.h and dense.h.
#pragma once

#include <algorithm>
#include <cstring>

namespace fastconv {
namespace FC_ISA {

// Output tiles of the layer: ceil(P/2) x ceil(Q/2) per image.
inline int64_t wino_tile_rows(const ConvGeometry& g) { return (g.P + 1) / 2; }
inline int64_t wino_tile_cols(const ConvGeometry& g) { return (g.Q + 1) / 2; }

// U[xi] = G g G^T for output channels [m0, m1) as [xi][K][C] rows (planes of
// round_up(K, MR) * C + kWinoPad; the GEMMs read the rows in place): V input channels at a
// time, the 3x3 taps transposed into vectors.
template <typename T>
void winograd_pack_weight(const ConvGeometry& g, const T* w, T* packed, int64_t m0, int64_t m1) {
  constexpr int V = Vec<T>::size;
  const int64_t C = g.C, Kp = round_up(g.K, MR), rows = m1 - m0, u_plane = Kp * C + kWinoPad;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < C; c += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, C - c));
      vec_t<T> t[V > 9 ? V : 9];  // t[r*3 + s]: tap (r, s) of channels c..c+cnt
      const T* src = w + ((m0 + i) * C + c) * 9;
      if constexpr (V >= 9) {
        load_transposed(t, 9, cnt, src, 9);
      } else {
        for (int tap = 0; tap < 9; ++tap) {
          t[tap] = vec_t<T>{};
          for (int l = 0; l < cnt; ++l) t[tap][l] = src[l * 9 + tap];
        }
      }
      vec_t<T> gg[4][3];  // G g: rows of G against the kernel's columns
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s) {
        const vec_t<T> half = splat<T>(0.5);
        gg[0][s] = t[s];
        gg[1][s] = (t[s] + t[3 + s] + t[6 + s]) * half;
        gg[2][s] = (t[s] - t[3 + s] + t[6 + s]) * half;
        gg[3][s] = t[6 + s];
      }
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) {
        const vec_t<T> half = splat<T>(0.5);
        const vec_t<T> u[4] = {gg[a][0], (gg[a][0] + gg[a][1] + gg[a][2]) * half,
                               (gg[a][0] - gg[a][1] + gg[a][2]) * half, gg[a][2]};
#pragma GCC unroll 4
        for (int b = 0; b < 4; ++b)
          storeu_n(packed + (a * 4 + b) * u_plane + (m0 + i) * C + c, u[b], cnt);
      }
    }
}

// Lanes of v for chunk columns [j, j + cnt) into a [C][NR]-panel matrix at row c (columns
// may run across a panel boundary).
template <typename T>
static inline void put_panel_lanes(T* panels, int64_t C, int64_t c, int64_t j, vec_t<T> v,
                                   int cnt) {
  constexpr int nr = NR<T>;
  const int64_t in_panel = nr - j % nr;
  T* d = panels + ((j / nr) * C + c) * nr + j % nr;
  if (cnt <= in_panel) {
    storeu_n(d, v, cnt);
    return;
  }
  alignas(64) T tmp[Vec<T>::size];
  storeu(tmp, v);
  std::memcpy(d, tmp, sizeof(T) * in_panel);
  std::memcpy(panels + ((j / nr + 1) * C + c) * nr, tmp + in_panel, sizeof(T) * (cnt - in_panel));
}

// Runs of tiles [t0, t1) inside one tile row of one image:
// fn(image, tile row, first tile column, end tile column, offset of the run in [t0, t1)).
template <typename Fn>
static void for_each_tile_run(const ConvGeometry& g, int64_t t0, int64_t t1, Fn&& fn) {
  const int64_t tw = wino_tile_cols(g), per_image = wino_tile_rows(g) * tw;
  for (int64_t t = t0; t < t1;) {
    const int64_t n = t / per_image, ty = (t % per_image) / tw, tx = t % tw;
    const int64_t len = std::min(tw - tx, t1 - t);
    fn(n, ty, tx, tx + len, t - t0);
    t += len;
  }
}

// Rows [row0, row0 + nrows) of one plane (H x W), columns [col0, col0 + width), into
// nrows staged rows of `span` values, zero outside the plane and past width.
template <typename T>
static void stage_rows(const T* plane, int64_t H, int64_t W, int64_t row0, int nrows, int64_t col0,
                       int64_t width, int64_t span, T* dst) {
  for (int i = 0; i < nrows; ++i) {
    T* d = dst + i * span;
    const int64_t ih = row0 + i;
    std::fill_n(d, span, T(0));
    if (ih < 0 || ih >= H) continue;
    const int64_t lo = std::max<int64_t>(0, -col0), hi = std::min(width, W - col0);
    if (hi > lo) std::copy(plane + ih * W + col0 + lo, plane + ih * W + col0 + hi, d + lo);
  }
}

// d[i][j] = element (i, j) of the N x N patches of V consecutive tiles (stride 2), tile
// `off` first, from N staged rows.
template <typename T, int N>
inline void load_patches(const T* rows, int64_t span, int64_t off, vec_t<T> (*d)[N]) {
  constexpr int V = Vec<T>::size;
#pragma GCC unroll 4
  for (int i = 0; i < N; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < N; ++j) {
      const T* src = rows + i * span + 2 * off + j;
      d[i][j] = even_lanes<T>(loadu(src), loadu(src + V));
    }
}

// The N x N patches (stride 2) under tiles [t0, t1) for channels [c0, c1) of `src` (planes
// of A x B, `channels` per image; patch row 0 of tile row ty is plane row 2*ty - top, column
// 0 of tile column tx is 2*tx - left, zero outside the plane), V tiles at a time:
// fn(channel, offset of the first tile in [t0, t1), d[N][N], count).
template <typename T, int N, typename Fn>
static void for_each_patch_group(const ConvGeometry& g, const T* src, int64_t channels, int64_t A,
                                 int64_t B, int64_t top, int64_t left, int64_t c0, int64_t c1,
                                 int64_t t0, int64_t t1, Fn&& fn) {
  constexpr int V = Vec<T>::size;
  const int64_t span = 2 * wino_tile_cols(g) + N - 2 + 2 * V;
  T* rows = thread_scratch<T>(0, N * span);
  for_each_tile_run(g, t0, t1, [&](int64_t n, int64_t ty, int64_t txa, int64_t txb, int64_t j0) {
    for (int64_t c = c0; c < c1; ++c) {
      stage_rows(src + (n * channels + c) * A * B, A, B, 2 * ty - top, N, 2 * txa - left,
                 2 * (txb - txa) + N - 2, span, rows);
      for (int64_t off = 0; off < txb - txa; off += V) {
        vec_t<T> d[N][N];
        load_patches<T, N>(rows, span, off, d);
        fn(c, j0 + off, d, static_cast<int>(std::min<int64_t>(V, txb - txa - off)));
      }
    }
  });
}

// Input transform of tiles [t0, t1) for channels [c0, c1) of x (C channels per image):
// store(xi, c, offset of the first tile in [t0, t1), values of up to V tiles, count).
template <typename T, typename Store>
static void wino_input_transform(const ConvGeometry& g, const T* x, int64_t C, int64_t c0,
                                 int64_t c1, int64_t t0, int64_t t1, Store&& store) {
  for_each_patch_group<T, 4>(g, x, C, g.H, g.W, g.pad_h, g.pad_w, c0, c1, t0, t1,
                             [&](int64_t c, int64_t j, vec_t<T>(*d)[4], int cnt) {
                               vec_t<T> t[4][4];
#pragma GCC unroll 4
                               for (int jj = 0; jj < 4; ++jj) {
                                 t[0][jj] = d[0][jj] - d[2][jj];
                                 t[1][jj] = d[1][jj] + d[2][jj];
                                 t[2][jj] = d[2][jj] - d[1][jj];
                                 t[3][jj] = d[1][jj] - d[3][jj];
                               }
#pragma GCC unroll 4
                               for (int a = 0; a < 4; ++a) {
                                 const vec_t<T> v4[4] = {t[a][0] - t[a][2], t[a][1] + t[a][2],
                                                         t[a][2] - t[a][1], t[a][1] - t[a][3]};
#pragma GCC unroll 4
                                 for (int b = 0; b < 4; ++b) store(a * 4 + b, c, j, v4[b], cnt);
                               }
                             });
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
  T* vb = thread_scratch<T>(1, 16 * v_plane);
  T* mb = thread_scratch<T>(2, 16 * m_plane + V);  // + V: the last row's whole-vector reads

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
        vec_t<T> u[2][4];
#pragma GCC unroll 4
        for (int b = 0; b < 4; ++b) {
          u[0][b] = m[b] + m[4 + b] + m[8 + b];
          u[1][b] = m[4 + b] - m[8 + b] - m[12 + b];
        }
        const int64_t q0 = 2 * (txa + off);
        const int64_t ncols = std::min<int64_t>(2 * cnt, g.Q - q0);
#pragma GCC unroll 2
        for (int a = 0; a < 2; ++a) {
          const int64_t p = 2 * ty + a;
          if (p >= g.P) break;
          const vec_t<T> e = bv + u[a][0] + u[a][1] + u[a][2];
          const vec_t<T> o = bv + u[a][1] - u[a][2] - u[a][3];
          vec_t<T> lo, hi;
          interleave<T>(e, o, &lo, &hi);
          T* dst = yk + p * g.Q + q0;
          storeu_n(dst, lo, static_cast<int>(std::min<int64_t>(V, ncols)));
          if (ncols > V) storeu_n(dst + V, hi, static_cast<int>(ncols - V));
        }
      }
    }
  });
}

// ---- grad-weight --------------------------------------------------------------------------
// The adjoint of the forward: with Gy = A gy A^T per 2x2 grad_output tile (A = (A^T)^T),
//   dU[xi] (C x K, stored transposed) = sum over tiles V[xi] (C x tiles) * Gy[xi]^T,
//   gw = G^T dU G per (k, c).
// 16 GEMMs whose depth is the tiles (chunks of kKC, always in the same order, so the sums
// do not depend on the thread count), then one small transform per weight.

// Gy transform of tiles [t0, t1), channels [k0, k1) of gy: store(xi, k, offset, values, count).
template <typename T, typename Store>
static void wino_grad_output_transform(const ConvGeometry& g, const T* gy, int64_t k0, int64_t k1,
                                       int64_t t0, int64_t t1, Store&& store) {
  for_each_patch_group<T, 2>(g, gy, g.K, g.P, g.Q, 0, 0, k0, k1, t0, t1,
                             [&](int64_t k, int64_t j, vec_t<T>(*d)[2], int cnt) {
                               // A = [1 0; 1 1; 1 -1; 0 -1] on rows, then on columns.
                               vec_t<T> h[4][2];
#pragma GCC unroll 2
                               for (int jj = 0; jj < 2; ++jj) {
                                 h[0][jj] = d[0][jj];
                                 h[1][jj] = d[0][jj] + d[1][jj];
                                 h[2][jj] = d[0][jj] - d[1][jj];
                                 h[3][jj] = -d[1][jj];
                               }
#pragma GCC unroll 4
                               for (int a = 0; a < 4; ++a) {
                                 const vec_t<T> v4[4] = {h[a][0], h[a][0] + h[a][1],
                                                         h[a][0] - h[a][1], -h[a][1]};
#pragma GCC unroll 4
                                 for (int b = 0; b < 4; ++b) store(a * 4 + b, k, j, v4[b], cnt);
                               }
                             });
}

// du[xi][c][k] = sum over all tiles for input channels [c0, c1) (every output channel).
template <typename T>
void winograd_wgrad_block(const ConvGeometry& g, const T* x, const T* gy, int64_t c0, int64_t c1,
                          T* du) {
  const int64_t C = g.C, K = g.K, cb = c1 - c0, kp = round_up(K, NR<T>);
  const int64_t tiles = g.N * wino_tile_rows(g) * wino_tile_cols(g), tc_max = kKC;
  const int64_t vp_plane = cb * tc_max + kWinoPad, gp_plane = K * tc_max + kWinoPad;
  const int64_t du_plane = C * K + kWinoPad;
  // Slot 0 is the transforms' staging (stage_rows).
  T* vplain = thread_scratch<T>(1, 16 * vp_plane);
  T* gplain = thread_scratch<T>(2, 16 * gp_plane);
  T* b = thread_scratch<T>(3, kp * tc_max);
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
  const vec_t<T> half = splat<T>(0.5);
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t k = 0; k < K; k += V) {
      const int cnt = static_cast<int>(std::min<int64_t>(V, K - k));
      vec_t<T> m[16];
#pragma GCC unroll 16
      for (int xi = 0; xi < 16; ++xi) m[xi] = loadu_n(du + xi * du_plane + c * K + k, cnt);
      vec_t<T> r[3][4];  // G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1] on rows
#pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) {
        r[0][b] = m[b] + (m[4 + b] + m[8 + b]) * half;
        r[1][b] = (m[4 + b] - m[8 + b]) * half;
        r[2][b] = (m[4 + b] + m[8 + b]) * half + m[12 + b];
      }
      vec_t<T> w[V > 9 ? V : 9];  // w[i*3 + j], then transposed to one vector per k
#pragma GCC unroll 3
      for (int i = 0; i < 3; ++i) {
        w[i * 3] = r[i][0] + (r[i][1] + r[i][2]) * half;
        w[i * 3 + 1] = (r[i][1] - r[i][2]) * half;
        w[i * 3 + 2] = (r[i][1] + r[i][2]) * half + r[i][3];
      }
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
