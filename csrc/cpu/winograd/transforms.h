// The transforms of Winograd F(2x2, 3x3) on staged 4x4 input patches and 2x2 grad_output
// patches, V tiles at a time (forward.h, grad_weight.h).
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>
#include <cstring>

#include "../dense/gemm.h"
#include "../runtime/workspace.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

// Output tiles of the layer: ceil(P/2) x ceil(Q/2) per image.
inline int64_t wino_tile_rows(const ConvGeometry& g) { return (g.P + 1) / 2; }
inline int64_t wino_tile_cols(const ConvGeometry& g) { return (g.Q + 1) / 2; }

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
  const Workspace<T> rows_ws(Slot::kStage, N * span);
  T* rows = rows_ws.data();
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

// The transforms on vectors (any V lanes: tiles in NCHW, channels in NHWC).
// v[a*4 + b] = (B^T d B)[a][b] for a 4x4 input patch d.
template <typename T>
inline void wino_input_tf(const vec_t<T> (*d)[4], vec_t<T>* v) {
  vec_t<T> t[4][4];
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    t[0][j] = d[0][j] - d[2][j];
    t[1][j] = d[1][j] + d[2][j];
    t[2][j] = d[2][j] - d[1][j];
    t[3][j] = d[1][j] - d[3][j];
  }
#pragma GCC unroll 4
  for (int a = 0; a < 4; ++a) {
    v[a * 4 + 0] = t[a][0] - t[a][2];
    v[a * 4 + 1] = t[a][1] + t[a][2];
    v[a * 4 + 2] = t[a][2] - t[a][1];
    v[a * 4 + 3] = t[a][1] - t[a][3];
  }
}
// v[a*4 + b] = (A gy A^T)[a][b] for a 2x2 grad_output patch d, A = [1 0; 1 1; 1 -1; 0 -1].
template <typename T>
inline void wino_grad_output_tf(const vec_t<T> (*d)[2], vec_t<T>* v) {
  vec_t<T> h[4][2];
#pragma GCC unroll 2
  for (int j = 0; j < 2; ++j) {
    h[0][j] = d[0][j];
    h[1][j] = d[0][j] + d[1][j];
    h[2][j] = d[0][j] - d[1][j];
    h[3][j] = -d[1][j];
  }
#pragma GCC unroll 4
  for (int a = 0; a < 4; ++a) {
    v[a * 4 + 0] = h[a][0];
    v[a * 4 + 1] = h[a][0] + h[a][1];
    v[a * 4 + 2] = h[a][0] - h[a][1];
    v[a * 4 + 3] = -h[a][1];
  }
}
// out[a][b] = bias + (A^T m A)[a][b], the 2x2 outputs of a transformed product m.
template <typename T>
inline void wino_output_tf(const vec_t<T>* m, vec_t<T> bias, vec_t<T> (*out)[2]) {
  vec_t<T> u[2][4];
#pragma GCC unroll 4
  for (int b = 0; b < 4; ++b) {
    u[0][b] = m[b] + m[4 + b] + m[8 + b];
    u[1][b] = m[4 + b] - m[8 + b] - m[12 + b];
  }
#pragma GCC unroll 2
  for (int a = 0; a < 2; ++a) {
    out[a][0] = bias + u[a][0] + u[a][1] + u[a][2];
    out[a][1] = bias + u[a][1] - u[a][2] - u[a][3];
  }
}
// u[a*4 + b] = (G g G^T)[a][b] for the 3x3 taps t[r*3 + s] of a kernel.
template <typename T>
inline void wino_weight_tf(const vec_t<T>* t, vec_t<T>* u) {
  const vec_t<T> half = splat<T>(0.5);
  vec_t<T> gg[4][3];  // G g: rows of G against the kernel's columns
#pragma GCC unroll 3
  for (int s = 0; s < 3; ++s) {
    gg[0][s] = t[s];
    gg[1][s] = (t[s] + t[3 + s] + t[6 + s]) * half;
    gg[2][s] = (t[s] - t[3 + s] + t[6 + s]) * half;
    gg[3][s] = t[6 + s];
  }
#pragma GCC unroll 4
  for (int a = 0; a < 4; ++a) {
    u[a * 4 + 0] = gg[a][0];
    u[a * 4 + 1] = (gg[a][0] + gg[a][1] + gg[a][2]) * half;
    u[a * 4 + 2] = (gg[a][0] - gg[a][1] + gg[a][2]) * half;
    u[a * 4 + 3] = gg[a][2];
  }
}
// w[r*3 + s] = (G^T m G)[r][s], the 3x3 weight gradient of a transformed one m.
template <typename T>
inline void wino_weight_grad_tf(const vec_t<T>* m, vec_t<T>* w) {
  const vec_t<T> half = splat<T>(0.5);
  vec_t<T> r[3][4];  // G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1] on rows
#pragma GCC unroll 4
  for (int b = 0; b < 4; ++b) {
    r[0][b] = m[b] + (m[4 + b] + m[8 + b]) * half;
    r[1][b] = (m[4 + b] - m[8 + b]) * half;
    r[2][b] = (m[4 + b] + m[8 + b]) * half + m[12 + b];
  }
#pragma GCC unroll 3
  for (int i = 0; i < 3; ++i) {
    w[i * 3] = r[i][0] + (r[i][1] + r[i][2]) * half;
    w[i * 3 + 1] = (r[i][1] - r[i][2]) * half;
    w[i * 3 + 2] = (r[i][1] + r[i][2]) * half + r[i][3];
  }
}

// Input transform of tiles [t0, t1) for channels [c0, c1) of x (C channels per image):
// store(xi, c, offset of the first tile in [t0, t1), values of up to V tiles, count).
template <typename T, typename Store>
static void wino_input_transform(const ConvGeometry& g, const T* x, int64_t C, int64_t c0,
                                 int64_t c1, int64_t t0, int64_t t1, Store&& store) {
  for_each_patch_group<T, 4>(g, x, C, g.H, g.W, g.pad_h, g.pad_w, c0, c1, t0, t1,
                             [&](int64_t c, int64_t j, vec_t<T>(*d)[4], int cnt) {
                               vec_t<T> v[16];
                               wino_input_tf<T>(d, v);
#pragma GCC unroll 16
                               for (int xi = 0; xi < 16; ++xi) store(xi, c, j, v[xi], cnt);
                             });
}

// Gy transform of tiles [t0, t1), channels [k0, k1) of gy: store(xi, k, offset, values, count).
template <typename T, typename Store>
static void wino_grad_output_transform(const ConvGeometry& g, const T* gy, int64_t k0, int64_t k1,
                                       int64_t t0, int64_t t1, Store&& store) {
  for_each_patch_group<T, 2>(g, gy, g.K, g.P, g.Q, 0, 0, k0, k1, t0, t1,
                             [&](int64_t k, int64_t j, vec_t<T>(*d)[2], int cnt) {
                               vec_t<T> v[16];
                               wino_grad_output_tf<T>(d, v);
#pragma GCC unroll 16
                               for (int xi = 0; xi < 16; ++xi) store(xi, k, j, v[xi], cnt);
                             });
}

}  // namespace FC_ISA
}  // namespace fastconv
