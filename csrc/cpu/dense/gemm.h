// The GEMM pieces of the implicit-GEMM families (dense, Winograd): a register-blocked
// micro-kernel and its packing. The micro-kernel keeps an MR x NR block of C in registers
// (6 x 2 vectors: 12 accumulators) and does MR*2 FMAs per 2 vector loads + MR broadcasts.
// Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "table.h"

namespace fastconv {
namespace FC_ISA {

constexpr int MR = kDenseMR;
constexpr int64_t kKC = 128;  // reduction depth per packed slice: a B micro-panel fits L1
constexpr int64_t kMC = 192;  // rows of A per block of panel_gemm
template <typename T>
constexpr int NR = 2 * Vec<T>::size;
template <typename T>
constexpr int64_t kNB = 8 * NR<T>;  // positions per tile of the strided dgrad

static inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
// Depth of the slices a reduction of length n is cut into: one slice up to 5/4 kKC (a
// 147-deep stem in one pass rather than a full pass and a short one), else equal slices of
// at most kKC (deeper B panels no longer stay in L1).
static inline int64_t slice_depth(int64_t n) {
  const int64_t slices = n <= kKC * 5 / 4 ? 1 : (n + kKC - 1) / kKC;
  return (n + slices - 1) / slices;
}

// A register tile's results: C[0:mr, 0:nr] = (overwrite) or += acc. Unrolled whole, so
// that acc stays in registers (a loop over rows with a variable bound makes the compiler
// keep the tile in memory, stored in the prologue and reloaded here).
template <typename T, int NV>
inline void store_register_tile(const vec_t<T> (*acc)[NV], T* c, int64_t ldc, int mr, int nr,
                                bool overwrite) {
  constexpr int V = Vec<T>::size;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
#pragma GCC unroll 4
    for (int h = 0; h < NV; ++h) {
      const int n = std::clamp(nr - h * V, 0, V);
      T* ci = c + i * ldc + h * V;
      if (n == V)
        storeu(ci, overwrite ? acc[i][h] : loadu(ci) + acc[i][h]);
      else if (n > 0)
        storeu_n(ci, overwrite ? acc[i][h] : loadu_n(ci, n) + acc[i][h], n);
    }
  }
}

// C[0:mr, 0:nr] (+)= A (mr x kc, rows lda apart, read in place) * B micro-panel (kc x NR,
// packed so the loop reads it front to back); `overwrite` stores instead of adding (a first
// slice then needs no zero-filled C). Broadcasts take any address, so A needs no packing
// pass: reading unpacked rows costs a little in the loop, far less than packing wherever a
// matrix meets few columns (deep layers on small maps, Winograd's 16 transformed weights).
// Not inlined: inside the large tile functions GCC runs short of registers and keeps A's
// row pointers in vector registers.
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
  store_register_tile<T, 2>(acc, c, ldc, mr, nr, overwrite);
}

// C[0:m_len, 0:nb] (+)= A * B over one packed slice of depth kc. B micro-panels stay in L1
// while the A rows stream from L2 (the BLIS loop order), in blocks of at most kMC rows: a
// block's slice of A (kc x kMC, 96 KB) stays in L2 across all of B's panels, where all of
// A (m_len x kc: 512 KB for 1024 output channels) was swept once per panel, along with the
// block of C it updates.
template <typename T>
static void panel_gemm(int64_t kc, int64_t m_len, const T* a, int64_t lda, const T* b, int64_t nb,
                       T* c, int64_t ldc, bool overwrite = false) {
  const int64_t blocks = std::max<int64_t>(1, (m_len + kMC - 1) / kMC);
  const int64_t mc = round_up((m_len + blocks - 1) / blocks, MR);
  for (int64_t m0 = 0; m0 < m_len; m0 += mc)
    for (int64_t j = 0; j < nb; j += NR<T>) {
      const T* bp = b + (j / NR<T>)*kc * NR<T>;
      const int nr = static_cast<int>(std::min<int64_t>(NR<T>, nb - j));
      for (int64_t m = m0; m < std::min(m_len, m0 + mc); m += MR)
        micro_kernel(kc, a + m * lda, lda, bp, c + m * ldc + j, ldc,
                     static_cast<int>(std::min<int64_t>(MR, m_len - m)), nr, overwrite);
    }
}

// Rows [0, n) of src (row stride ld, kc columns) as P-row panels [n / P][kc][P] (rows past
// n zero; P = NR by default), V x V blocks at a time through register transposes.
template <typename T, int P = NR<T>>
static void pack_b_rows(const T* src, int64_t ld, int64_t n, int64_t kc, T* dst) {
  constexpr int V = Vec<T>::size;
  for (int64_t r0 = 0; r0 < n; r0 += P) {
    T* panel = dst + (r0 / P) * kc * P;
    for (int h = 0; h < P / V; ++h)
      for (int64_t t = 0; t < kc; t += V) {
        const int cnt = static_cast<int>(std::min<int64_t>(V, kc - t));
        const int rows = static_cast<int>(std::clamp<int64_t>(n - r0 - h * V, 0, V));
        vec_t<T> v[V];
        load_transposed(v, cnt, rows, src + (r0 + h * V) * ld + t, ld);
#pragma GCC unroll 16
        for (int j = 0; j < V; ++j)
          if (j < cnt) storeu(panel + (t + j) * P + h * V, v[j]);
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

// A row stride for a matrix read by the micro-kernel: whole vectors, and an odd number of
// them, so the rows of an A block spread over all L1 sets (a power-of-two stride puts the
// rows of a 512-channel grad-input block in 2 of 64 sets).
template <typename T>
static int64_t spread_ld(int64_t n) {
  constexpr int64_t V = Vec<T>::size;
  return ((n + V - 1) / V | 1) * V;
}

}  // namespace FC_ISA
}  // namespace fastconv
