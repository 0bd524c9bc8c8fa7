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

namespace fastconv {
namespace FC_ISA {

constexpr int MR = kDenseMR;
constexpr int64_t kKC = 128;  // reduction depth per packed slice: a B micro-panel fits L1
template <typename T>
constexpr int NR = 2 * Vec<T>::size;
template <typename T>
constexpr int64_t kNB = 8 * NR<T>;  // positions per tile of the strided dgrad

static inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
// Depth of the slices a reduction of length n is cut into: one slice up to 5/4 kKC (a
// 147-deep stem in one pass, not 128 + 19, whose short pass cost 10 %), else equal
// slices of at most kKC (deeper B panels than kKC measured slower).
static inline int64_t slice_depth(int64_t n) {
  const int64_t slices = n <= kKC * 5 / 4 ? 1 : (n + kKC - 1) / kKC;
  return (n + slices - 1) / slices;
}

// C[0:mr, 0:nr] (+)= A (mr x kc, rows lda apart, read in place) * B micro-panel (kc x NR,
// packed so the loop reads it front to back); `overwrite` stores instead of adding (a first
// slice then needs no zero-filled C). Broadcasts take any address, so A needs no packing
// pass; on a tuned loop that costs ~3 %, but packing had cost more than that wherever a
// matrix meets few columns (deep layers on small maps, Winograd's 16 transformed weights),
// and nothing measurable elsewhere. Not inlined: inside the large tile functions GCC ran
// short of registers and kept A's row pointers in vector registers (-15 % in the loop).
template <typename T>
__attribute__((noinline)) static void micro_kernel(int64_t kc, const T* __restrict a, int64_t lda,
                                                   const T* __restrict b, T* c, int64_t ldc, int mr,
                                                   int nr, bool overwrite) {
  constexpr int V = Vec<T>::size;
  const T* ar[MR];  // rows past mr re-read row 0 and are never stored
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) ar[i] = a + (i < mr ? i : 0) * lda;
  vec_t<T> acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vec_t<T>{};
  for (int64_t kk = 0; kk < kc; ++kk) {
    const vec_t<T> b0 = loadu(b + kk * 2 * V);
    const vec_t<T> b1 = loadu(b + kk * 2 * V + V);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const vec_t<T> ai = splat(ar[i][kk]);
      acc[i][0] += ai * b0;
      acc[i][1] += ai * b1;
    }
  }
  if (mr == MR && nr == 2 * V) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      T* ci = c + i * ldc;
      storeu(ci, overwrite ? acc[i][0] : loadu(ci) + acc[i][0]);
      storeu(ci + V, overwrite ? acc[i][1] : loadu(ci + V) + acc[i][1]);
    }
    return;
  }
  for (int i = 0; i < mr; ++i)
    for (int h = 0; h < 2; ++h) {
      const int n = std::min(V, nr - h * V);
      if (n <= 0) break;
      T* ci = c + i * ldc + h * V;
      storeu_n(ci, overwrite ? acc[i][h] : loadu_n(ci, n) + acc[i][h], n);
    }
}

// C[0:m_len, 0:nb] (+)= A * B over one packed slice of depth kc. B micro-panels stay in L1
// while the A rows stream from L2 (the BLIS loop order).
template <typename T>
static void panel_gemm(int64_t kc, int64_t m_len, const T* a, int64_t lda, const T* b, int64_t nb,
                       T* c, int64_t ldc, bool overwrite = false) {
  for (int64_t j = 0; j < nb; j += NR<T>) {
    const T* bp = b + (j / NR<T>)*kc * NR<T>;
    const int nr = static_cast<int>(std::min<int64_t>(NR<T>, nb - j));
    for (int64_t m = 0; m < m_len; m += MR)
      micro_kernel(kc, a + m * lda, lda, bp, c + m * ldc + j, ldc,
                   static_cast<int>(std::min<int64_t>(MR, m_len - m)), nr, overwrite);
  }
}

// Rows [0, n) of src (row stride ld, kc columns) as NR-row panels [n / NR][kc][NR] (rows
// past n zero), V x V blocks at a time through register transposes.
template <typename T>
static void pack_b_rows(const T* src, int64_t ld, int64_t n, int64_t kc, T* dst) {
  constexpr int V = Vec<T>::size;
  for (int64_t r0 = 0; r0 < n; r0 += NR<T>) {
    T* panel = dst + (r0 / NR<T>)*kc * NR<T>;
    for (int h = 0; h < NR<T> / V; ++h)
      for (int64_t t = 0; t < kc; t += V) {
        const int cnt = static_cast<int>(std::min<int64_t>(V, kc - t));
        const int rows = static_cast<int>(std::clamp<int64_t>(n - r0 - h * V, 0, V));
        vec_t<T> v[V];
        load_transposed(v, cnt, rows, src + (r0 + h * V) * ld + t, ld);
#pragma GCC unroll 16
        for (int j = 0; j < V; ++j)
          if (j < cnt) storeu(panel + (t + j) * NR<T> + h * V, v[j]);
      }
  }
}

// Row kk of a packed B slice (panels[j / NR][kk][j % NR], panel stride kc*NR) from a
// contiguous run of nb values, zero-filled up to a whole panel.
template <typename T>
static void put_b_row(const T* src, int64_t nb, int64_t kk, int64_t kc, T* b) {
  for (int64_t j0 = 0; j0 < nb; j0 += NR<T>) {
    T* d = b + (j0 / NR<T>)*kc * NR<T> + kk * NR<T>;
    const int64_t n = std::min<int64_t>(NR<T>, nb - j0);
    copy_strided(d, src + j0, n, 1);
    zero_fill(d + n, NR<T> - n);
  }
}

// Walks output positions [pq0, pq0 + len) row segment by row segment:
// fn(p, q_begin, q_end, offset of q_begin within the run).
template <typename Fn>
static inline void for_each_row_segment(const ConvGeometry& g, int64_t pq0, int64_t len, Fn&& fn) {
  int64_t p = pq0 / g.Q, q = pq0 % g.Q, j = 0;
  while (j < len) {
    const int64_t seg = std::min(g.Q - q, len - j);
    fn(p, q, q + seg, j);
    j += seg;
    q = 0;
    ++p;
  }
}

// Positions [j0, j1) of the whole batch (j = n*PQ + pq) image by image:
// fn(image, first position in it, length, offset from j0).
template <typename Fn>
static inline void for_each_image_run(int64_t PQ, int64_t j0, int64_t j1, Fn&& fn) {
  for (int64_t j = j0; j < j1;) {
    const int64_t n = j / PQ, len = std::min(j1 - j, (n + 1) * PQ - j);
    fn(n, j % PQ, len, j - j0);
    j += len;
  }
}

// One im2col row (tap c, r, s over output positions [pq0, pq0 + len)) into dst[0, len).
template <typename T>
static void im2col_row(const ConvGeometry& g, const T* xc, int64_t r, int64_t s, int64_t pq0,
                       int64_t len, T* dst) {
  const int64_t off = s * g.dil_w - g.pad_w;
  const Range qv = valid_out_range(off, g.stride_w, g.W, g.Q);
  for_each_row_segment(g, pq0, len, [&](int64_t p, int64_t qa, int64_t qb, int64_t j) {
    T* d = dst + (j - qa);
    const int64_t ih = g.in_row(p, r);
    if (ih < 0 || ih >= g.H) {
      zero_fill(d + qa, qb - qa);
      return;
    }
    const T* xr = xc + ih * g.W + off;
    const int64_t lo = std::max(qa, std::min(qv.lo, qb)), hi = std::max(lo, std::min(qv.hi, qb));
    zero_fill(d + qa, lo - qa);
    copy_strided(d + lo, xr + lo * g.stride_w, hi - lo, g.stride_w);
    zero_fill(d + hi, qb - hi);
  });
}

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
  const bool pointwise =
      RS == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  auto for_each_image = [&](auto&& fn) { for_each_image_run(PQ, j0, j1, fn); };
  const int64_t kg0 = grp * g.K_per_group() + k0;  // first output channel of the tile
  T* c = nullptr;
  int64_t ldc = PQ;
  if (one_image) {
    c = y + ((j0 / PQ) * g.K + kg0) * PQ + j0 % PQ;
  } else {
    c = thread_scratch<T>(0, m * nb);
    ldc = nb;
  }
  if (bias)  // else the first slice stores rather than adds
    for (int64_t k = 0; k < m; ++k) std::fill_n(c + k * ldc, nb, bias[k0 + k]);

  const int64_t kc_max = slice_depth(CRS);
  T* b = thread_scratch<T>(1, kc_max * nbp);
  T* row = thread_scratch<T>(2, nb);
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
// with scalar stores had cost as much as the FMAs).
template <typename T>
void dense_wgrad_tile(const ConvGeometry& g, const T* x, const T* gy, T* gw, int64_t grp,
                      int64_t k0, int64_t k1, int64_t j0, int64_t j1, int64_t n0, int64_t n1) {
  const int64_t RS = g.R * g.S, CRS = g.C_per_group() * RS, PQ = g.P * g.Q;
  const int64_t HW = g.H * g.W, m = k1 - k0, nb = j1 - j0;
  if (n0 >= n1) return;  // an empty slice of images (the first chunk stores into ct)
  T* rows = thread_scratch<T>(0, nb * kKC);
  T* b = thread_scratch<T>(1, round_up(m, NR<T>) * kKC);
  T* ct = thread_scratch<T>(2, nb * m);  // gw^T block, rows j, columns k
  T* gys = thread_scratch<T>(3, m * kKC);
  const T* xg = x + grp * g.C_per_group() * HW;
  const T* gyg = gy + (grp * g.K_per_group() + k0) * PQ;
  // The reduction runs over the positions of all the slice's images in chunks of kKC that
  // may span images (small maps: one 7x7 image alone would be a 49-deep pass).
  for (int64_t q0 = n0 * PQ; q0 < n1 * PQ; q0 += kKC) {
    const int64_t q1 = std::min(n1 * PQ, q0 + kKC), kc = q1 - q0;
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t c = (j0 + j) / RS, rs = (j0 + j) % RS;
      for_each_image_run(PQ, q0, q1, [&](int64_t n, int64_t pq, int64_t len, int64_t off) {
        im2col_row(g, xg + (n * g.C + c) * HW, rs / g.S, rs % g.S, pq, len, rows + j * kc + off);
      });
    }
    if (q0 / PQ == (q1 - 1) / PQ) {
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
        micro_kernel(kc, rows + j * kc, kc, b + k * kc, ct + j * m + k, m,
                     static_cast<int>(std::min<int64_t>(MR, nb - j)),
                     static_cast<int>(std::min<int64_t>(NR<T>, m - k)), q0 == n0 * PQ);
  }
  for (int64_t k = 0; k < m; ++k)
    for (int64_t j = 0; j < nb; ++j) gw[(k0 + k) * CRS + j0 + j] += ct[j * m + k];
}

// A row stride for a matrix read by the micro-kernel: whole vectors, and an odd number of
// them, so the rows of an A block spread over all L1 sets (a power-of-two stride had put
// the 72 rows of a 512-channel grad-input block in 2 of 64 sets).
template <typename T>
static int64_t spread_ld(int64_t n) {
  constexpr int64_t V = Vec<T>::size;
  return ((n + V - 1) / V | 1) * V;
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
  T* a = thread_scratch<T>(0, m * lda);
  const T* wg = w + grp * Kg * CRS + c0 * RS;
  for (int64_t i = 0; i < m; i += V)
    for (int64_t k = 0; k < Kg; k += V) {
      const int ni = static_cast<int>(std::min<int64_t>(V, m - i));
      const int nk = static_cast<int>(std::min<int64_t>(V, Kg - k));
      vec_t<T> v[V];  // v[j]: row i + j of A, columns k..k+nk
      load_transposed(v, ni, nk, wg + k * CRS + i, CRS);
      for (int j = 0; j < ni; ++j) storeu_n(a + (i + j) * lda + k, v[j], nk);
    }
  T* b = thread_scratch<T>(1, std::min(kKC, Kg) * nbp_max);
  T* col = thread_scratch<T>(2, m * nbp_max);
  T* row = thread_scratch<T>(3, nbmax);
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
