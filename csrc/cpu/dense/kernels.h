// Dense kernels (groups < in_channels): implicit GEMM on packed tiles.
//
//   Fprop: M = K/G output channels, N = P*Q positions, K = C/G*R*S  (y = W * im2col(x))
//   Wgrad: M = K/G, N = C/G*R*S, K = P*Q summed over images    (gw = gy * im2col(x)^T)
//   Dgrad (strided): M = C/G*R*S, N = P*Q, K = K/G then col2im  (gx = col2im(W^T * gy))
//   (stride-1 dgrad is Fprop on grad_output with the flipped, transposed weight.)
//
// Only a kKC x tile slice of the im2col matrix (B) is ever packed (bounded workspace, never the
// whole im2col buffer). The micro-kernel keeps an MR x NR block of C in registers
// (6 x 2 vectors: 12 accumulators) and does MR*2 FMAs per 2 vector loads + MR broadcasts.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "../runtime/workspace.h"
#include "gemm.h"
#include "im2col.h"

namespace fastconv {
namespace FC_ISA {

// Positions [j0, j1) of the whole batch (j = n*P*Q + p*Q + q), output channels [k0, k1)
// of group grp. A tile inside one image accumulates straight into y; a tile spanning
// images (maps smaller than a tile: 7x7 layers fill a 256-wide tile with five images
// instead of wasting lanes and re-streaming the weight per image) into a scratch block
// copied out image by image.
template <typename T>
void dense_fwd_tile(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, int64_t grp,
                    int64_t k0, int64_t k1, int64_t j0, int64_t j1) {
  const int64_t RS = g.R * g.S, CRS = g.C_per_group() * RS, PQ = g.P * g.Q, HW = g.H * g.W;
  const int64_t nb = j1 - j0, nbp = round_up(nb, NR<T>), m = k1 - k0;
  const bool one_image = j0 / PQ == (j1 - 1) / PQ;
  const bool pointwise = g.pointwise_unpadded() && g.unit_stride();
  auto for_each_image = [&](auto&& fn) { for_each_image_run(PQ, j0, j1, fn); };
  const int64_t kg0 = grp * g.K_per_group() + k0;  // first output channel of the tile
  const Workspace<T> tile_ws(Slot::kTile, one_image ? 0 : m * nb);
  T* c = one_image ? y + ((j0 / PQ) * g.K + kg0) * PQ + j0 % PQ : tile_ws.data();
  const int64_t ldc = one_image ? PQ : nb;
  if (bias)  // else the first slice stores rather than adds
    for (int64_t k = 0; k < m; ++k) std::fill_n(c + k * ldc, nb, bias[k0 + k]);

  const int64_t kc_max = slice_depth(CRS);
  const Workspace<T> b_ws(Slot::kPackB, kc_max * nbp), row_ws(Slot::kRow, nb);
  T *b = b_ws.data(), *row = row_ws.data();
  for (int64_t kk0 = 0; kk0 < CRS; kk0 += kc_max) {
    const int64_t kc = std::min(kc_max, CRS - kk0);
    for (int64_t kk = 0; kk < kc; ++kk) {
      const int64_t ch = grp * g.C_per_group() + (kk0 + kk) / RS, rs = (kk0 + kk) % RS;
      if (pointwise && one_image) {  // the im2col row is a run of x itself
        put_b_row(x + ((j0 / PQ) * g.C + ch) * HW + j0 % PQ, nb, kk, kc, b);
        continue;
      }
      for_each_image([&](int64_t n, int64_t pq, int64_t len, int64_t off) {
        im2col_row(g, x + (n * g.C + ch) * HW, rs / g.S, rs % g.S, pq, len, row + off);
      });
      put_b_row(row, nb, kk, kc, b);
    }
    panel_gemm(kc, m, w + k0 * CRS + kk0, CRS, b, nb, c, ldc, !bias && kk0 == 0);
  }
  if (!one_image)
    for_each_image([&](int64_t n, int64_t pq, int64_t len, int64_t off) {
      for (int64_t k = 0; k < m; ++k)
        std::copy_n(c + k * ldc + off, len, y + (n * g.K + kg0 + k) * PQ + pq);
    });
}

// Computed transposed, gw^T[j0:j1, k0:k1] = im2col(x) * gy^T, so that both operands pack
// from contiguous runs over positions: im2col rows into MR panels and grad_output rows
// straight into NR panels, each through register transposes (packing B column by column
// with scalar stores costs as much as the FMAs).
template <typename T>
void dense_wgrad_tile(const ConvGeometry& g, const T* x, const T* gy, T* gw, int64_t grp,
                      int64_t k0, int64_t k1, int64_t j0, int64_t j1, int64_t n0, int64_t n1) {
  const int64_t RS = g.R * g.S, CRS = g.C_per_group() * RS, PQ = g.P * g.Q;
  const int64_t HW = g.H * g.W, m = k1 - k0, nb = j1 - j0;
  if (n0 >= n1 || PQ == 0) {  // no positions (an empty batch or map): a zero sum
    for (int64_t k = k0; k < k1; ++k) std::fill(gw + k * CRS + j0, gw + k * CRS + j1, T(0));
    return;
  }
  const Workspace<T> rows_ws(Slot::kPackA, nb * kKC), b_ws(Slot::kPackB, round_up(m, NR<T>) * kKC);
  const Workspace<T> ct_ws(Slot::kTile, nb * m), gys_ws(Slot::kRow, m * kKC);
  // ct: the gw^T block, rows j, columns k.
  T *rows = rows_ws.data(), *b = b_ws.data(), *ct = ct_ws.data(), *gys = gys_ws.data();
  const T* xg = x + grp * g.C_per_group() * HW;
  const T* gyg = gy + (grp * g.K_per_group() + k0) * PQ;
  // The reduction runs over the positions of all the slice's images in chunks of kKC that
  // may span images (small maps: one 7x7 image alone would be a 49-deep pass).
  for (int64_t q0 = n0 * PQ; q0 < n1 * PQ; q0 += kKC) {
    const int64_t q1 = std::min(n1 * PQ, q0 + kKC), kc = q1 - q0;
    const bool one_image = q0 / PQ == (q1 - 1) / PQ;
    // A: the im2col rows j of the chunk, lda apart; a 1x1 stride-1 layer's are x's own
    // rows, read in place within one image (copying them was a sixth of a 256x56^2 ->
    // 128 grad-weight at batch 8).
    const T* a = rows;
    int64_t lda = kc;
    if (g.pointwise_in_place() && one_image) {
      a = xg + ((q0 / PQ) * g.C + j0) * HW + q0 % PQ;
      lda = HW;
    } else {
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t c = (j0 + j) / RS, rs = (j0 + j) % RS;
        for_each_image_run(PQ, q0, q1, [&](int64_t n, int64_t pq, int64_t len, int64_t off) {
          im2col_row(g, xg + (n * g.C + c) * HW, rs / g.S, rs % g.S, pq, len, rows + j * kc + off);
        });
      }
    }
    if (one_image) {
      pack_b_rows(gyg + (q0 / PQ) * g.K * PQ + q0 % PQ, PQ, m, kc, b);
    } else {
      for_each_image_run(PQ, q0, q1, [&](int64_t n, int64_t pq, int64_t len, int64_t off) {
        for (int64_t k = 0; k < m; ++k)
          copy_strided(gys + k * kc + off, gyg + (n * g.K + k) * PQ + pq, len, 1);
      });
      pack_b_rows(gys, kc, m, kc, b);
    }
    for (int64_t k = 0; k < m; k += NR<T>)
      for (int64_t j = 0; j < nb; j += MR)
        micro_kernel(kc, a + j * lda, lda, b + k * kc, ct + j * m + k, m,
                     static_cast<int>(std::min<int64_t>(MR, nb - j)),
                     static_cast<int>(std::min<int64_t>(NR<T>, m - k)), q0 == n0 * PQ);
  }
  for (int64_t k = 0; k < m; ++k)
    for (int64_t j = 0; j < nb; ++j) gw[(k0 + k) * CRS + j0 + j] = ct[j * m + k];
}

template <typename T>
void dense_dgrad_tile(const ConvGeometry& g, const T* gy, const T* w, T* gx, int64_t grp,
                      int64_t c0, int64_t c1, int64_t n0, int64_t n1) {
  constexpr int V = Vec<T>::size;
  const int64_t RS = g.R * g.S, CRS = g.C_per_group() * RS, PQ = g.P * g.Q;
  const int64_t Kg = g.K_per_group(), HW = g.H * g.W;
  const int64_t m = (c1 - c0) * RS, nbmax = std::min(kNB<T>, (n1 - n0) * PQ);
  const int64_t nbp_max = round_up(nbmax, NR<T>);
  // A = W^T restricted to this task's rows (c, r, s), all of the group's output channels:
  // transposed once per task, V x V blocks through registers, and used for all its images.
  const int64_t lda = spread_ld<T>(Kg);
  const Workspace<T> a_ws(Slot::kPackA, m * lda);
  T* a = a_ws.data();
  const T* wg = w + grp * Kg * CRS + c0 * RS;
  for (int64_t i = 0; i < m; i += V)
    for (int64_t k = 0; k < Kg; k += V) {
      const int ni = static_cast<int>(std::min<int64_t>(V, m - i));
      const int nk = static_cast<int>(std::min<int64_t>(V, Kg - k));
      vec_t<T> v[V];  // v[j]: row i + j of A, columns k..k+nk
      load_transposed(v, ni, nk, wg + k * CRS + i, CRS);
      for (int j = 0; j < ni; ++j) storeu_n(a + (i + j) * lda + k, v[j], nk);
    }
  const Workspace<T> b_ws(Slot::kPackB, std::min(kKC, Kg) * nbp_max);
  const Workspace<T> col_ws(Slot::kTile, m * nbp_max), row_ws(Slot::kRow, nbmax);
  T *b = b_ws.data(), *col = col_ws.data(), *row = row_ws.data();
  const int64_t Cg = g.C_per_group();
  for (int64_t n = n0; n < n1; ++n)
    std::fill_n(gx + (n * g.C + grp * Cg + c0) * HW, (c1 - c0) * HW, T(0));

  // Column tiles run over the positions of all the task's images: maps smaller than a tile
  // share one (as in dense_fwd_tile), instead of leaving most of an NR panel empty.
  for (int64_t j0 = n0 * PQ; j0 < n1 * PQ; j0 += nbmax) {
    const int64_t j1 = std::min(n1 * PQ, j0 + nbmax), nb = j1 - j0, nbp = round_up(nb, NR<T>);
    for (int64_t kk0 = 0; kk0 < Kg; kk0 += kKC) {
      const int64_t kc = std::min(kKC, Kg - kk0);
      for (int64_t kk = 0; kk < kc; ++kk) {
        for_each_image_run(PQ, j0, j1, [&](int64_t n, int64_t pq, int64_t len, int64_t off) {
          copy_strided(row + off, gy + (n * g.K + grp * Kg + kk0 + kk) * PQ + pq, len, 1);
        });
        put_b_row(row, nb, kk, kc, b);
      }
      panel_gemm(kc, m, a + kk0, lda, b, nb, col, nbp, kk0 == 0);  // the first slice stores
    }
    // col2im: scatter each tap's row back onto the input plane it was read from.
    for_each_image_run(PQ, j0, j1, [&](int64_t n, int64_t pq, int64_t len, int64_t off) {
      T* gxg = gx + (n * g.C + grp * Cg) * HW;
      for (int64_t i = 0; i < m; ++i) {
        const int64_t c = c0 + i / RS, r = (i % RS) / g.S, s = i % g.S;
        const int64_t off_w = s * g.dil_w - g.pad_w;
        const Range qv = valid_out_range(off_w, g.stride_w, g.W, g.Q);
        T* gxc = gxg + c * HW;
        const T* src = col + i * nbp + off;
        for_each_row_segment(g, pq, len, [&](int64_t p, int64_t qa, int64_t qb, int64_t j) {
          const int64_t ih = g.in_row(p, r);
          if (ih < 0 || ih >= g.H) return;
          T* dst = gxc + ih * g.W + off_w;
          const T* sr = src + j - qa;
          const int64_t lo = std::max(qa, qv.lo), hi = std::min(qb, qv.hi);
          if (lo < hi) add_strided(dst + lo * g.stride_w, sr + lo, hi - lo, g.stride_w);
        });
      }
    });
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
