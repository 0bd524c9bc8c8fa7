// Dense forward for bfloat16 with vdpbf16ps: 32 bf16 multiply-adds into 16 float32 lanes per
// instruction, twice the float32 FMA rate. The implicit GEMM of dense.h -- y = W * im2col(x)
// on tiles of (image, group, output channels, positions), one bounded packed slice of the
// im2col matrix at a time, im2col_row shared -- with k packed in pairs, the unit vdpbf16ps
// reduces (low half = even k):
//   A (weights): panels[m / MR][k / 2][m % MR]      one 32-bit pair per row: a broadcast
//   B (im2col):  panels[j / NR][k / 2][j % NR][2]   two zmm per pair (NR = 32 positions)
// Accumulation is float32 and the caller rounds once to bfloat16. bf16 x bf16 products are
// exact in float32; vdpbf16ps flushes denormals, far below bfloat16's own rounding error.
#include "dense_bf16.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <memory>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "kernel_table.h"

// (Literal target strings: a macro inside #pragma is not expanded.)
#if defined(__clang__)
#pragma clang attribute push(                                                          \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")
#endif

// im2col_row and its helpers, compiled for this target like the other kernels.
#define FC_ISA avx512bf16
#define FC_VEC_BYTES 64
#include "vec.h"
#include "dense.h"

namespace fastconv {
namespace avx512bf16 {
namespace {

constexpr int kMR = 6, kNR = 32;
constexpr int64_t kKC2 = 256;  // im2col rows per packed slice (128 pairs; a B panel fits L1)

__mmask32 lanes32(int64_t n) { return n >= 32 ? ~__mmask32(0) : (__mmask32(1) << n) - 1; }
__mmask16 lanes16(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// C[0:mr, 0:nr] += A micro-panel (kp pairs x MR) * B micro-panel (kp pairs x NR).
void micro_kernel(int64_t kp, const uint32_t* __restrict a, const uint16_t* __restrict b, float* c,
                  int64_t ldc, int mr, int nr) {
  __m512 acc[kMR][2];
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * 2 * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * 2 * kNR + kNR);
    const uint32_t* ap = a + p * kMR;
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[i]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
  const __mmask16 m0 = lanes16(nr), m1 = lanes16(nr - 16);
  for (int i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    _mm512_mask_storeu_ps(ci, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), acc[i][0]));
    _mm512_mask_storeu_ps(ci + 16, m1,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), acc[i][1]));
  }
}

// Pair p of a packed B slice from two im2col rows (the odd one may be all zero): vpermt2w
// interleaves 32 positions of each into two zmm.
void put_b_pair(const uint16_t* row0, const uint16_t* row1, int64_t nb, int64_t p, int64_t kp,
                uint16_t* b) {
  alignas(64) static const uint16_t kLo[32] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,
                                               37, 6,  38, 7,  39, 8,  40, 9,  41, 10, 42,
                                               11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static const uint16_t kHi[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21,
                                               53, 22, 54, 23, 55, 24, 56, 25, 57, 26, 58,
                                               27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i lo = _mm512_load_si512(kLo), hi = _mm512_load_si512(kHi);
  for (int64_t j0 = 0; j0 < nb; j0 += kNR) {
    const __mmask32 m = lanes32(nb - j0);
    const __m512i r0 = _mm512_maskz_loadu_epi16(m, row0 + j0);
    const __m512i r1 = _mm512_maskz_loadu_epi16(m, row1 + j0);
    uint16_t* d = b + (j0 / kNR) * kp * 2 * kNR + p * 2 * kNR;
    _mm512_storeu_si512(d, _mm512_permutex2var_epi16(r0, lo, r1));
    _mm512_storeu_si512(d + kNR, _mm512_permutex2var_epi16(r0, hi, r1));
  }
}

}  // namespace

// Output channels [k0, k1) x positions [pq0, pq1) of image n (x_n, y_n), group grp.
void fwd_tile(const ConvGeometry& g, const uint16_t* x_n, const uint32_t* packed_w,
              const float* bias, float* y_n, int64_t grp, int64_t k0, int64_t k1, int64_t pq0,
              int64_t pq1) {
  const int64_t RS = g.R * g.S, CRS = g.C_per_group() * RS, PQ = g.P * g.Q, HW = g.H * g.W;
  const int64_t pairs = (CRS + 1) / 2;
  const uint16_t* xg = x_n + grp * g.C_per_group() * HW;
  float* yg = y_n + grp * g.K_per_group() * PQ;
  const int64_t nb = pq1 - pq0, nbp = round_up(nb, kNR);
  for (int64_t k = k0; k < k1; ++k) std::fill_n(yg + k * PQ + pq0, nb, bias ? bias[k] : 0.f);
  uint16_t* b = thread_scratch<uint16_t>(0, std::min(kKC2, round_up(CRS, 2)) * nbp);
  uint16_t *row0 = thread_scratch<uint16_t>(1, nb), *row1 = thread_scratch<uint16_t>(2, nb);
  for (int64_t kk0 = 0; kk0 < CRS; kk0 += kKC2) {
    const int64_t kc = std::min(kKC2, CRS - kk0), kp = (kc + 1) / 2;
    for (int64_t p = 0; p < kp; ++p) {
      for (int h = 0; h < 2; ++h) {
        const int64_t k = kk0 + 2 * p + h;
        uint16_t* row = h ? row1 : row0;
        if (k < kk0 + kc)
          im2col_row(g, xg + (k / RS) * HW, (k % RS) / g.S, k % g.S, pq0, nb, row);
        else
          std::fill_n(row, nb, uint16_t(0));
      }
      put_b_pair(row0, row1, nb, p, kp, b);
    }
    const uint32_t* a = packed_w + (k0 / kMR) * pairs * kMR + (kk0 / 2) * kMR;
    for (int64_t j = 0; j < nb; j += kNR) {
      const uint16_t* bp = b + (j / kNR) * kp * 2 * kNR;
      const int nr = static_cast<int>(std::min<int64_t>(kNR, nb - j));
      for (int64_t m = k0; m < k1; m += kMR)
        micro_kernel(kp, a + ((m - k0) / kMR) * pairs * kMR, bp, yg + m * PQ + pq0 + j, PQ,
                     static_cast<int>(std::min<int64_t>(kMR, k1 - m)), nr);
    }
  }
}

}  // namespace avx512bf16
}  // namespace fastconv

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#define FC_BF16_BUILD 1
#endif

namespace fastconv {

bool dense_bf16_available() {
#if defined(FC_BF16_BUILD)
  static const bool ok = [] {
    if (!cpu_isa_allowed("avx512")) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bf16");
  }();
  return ok;
#else
  return false;
#endif
}

void dense_forward_bf16(const ConvGeometry& g, const uint16_t* x, const uint16_t* w,
                        const float* bias, float* y) {
#if defined(FC_BF16_BUILD)
  constexpr int MR = avx512bf16::kMR;
  const int64_t Kg = g.K_per_group(), CRS = g.C_per_group() * g.R * g.S, PQ = g.P * g.Q;
  const int64_t pairs = (CRS + 1) / 2, rows = (Kg + MR - 1) / MR * MR;
  // Weights as 32-bit pairs in MR-row panels: panels[m / MR][pair][m % MR], zero padded.
  // Kept per thread: a fresh multi-MB buffer each call would pay first-touch page faults.
  // (Worker threads see their own thread_local, so they get the pointer, not the name.)
  static thread_local std::vector<uint32_t> packed_cache;
  packed_cache.assign(static_cast<size_t>(g.groups * rows * pairs), 0);
  uint32_t* const packed = packed_cache.data();
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t m = 0; m < Kg; ++m) {
      const uint16_t* wr = w + (grp * Kg + m) * CRS;
      uint32_t* panel = packed + grp * rows * pairs + (m / MR) * pairs * MR + m % MR;
      for (int64_t p = 0; p < pairs; ++p) {
        const uint32_t hi = 2 * p + 1 < CRS ? wr[2 * p + 1] : 0;
        panel[p * MR] = wr[2 * p] | (hi << 16);
      }
    }
  // The tiling of dense_forward (conv2d.cpp): output channels split only when there are too
  // few (image, group, position) tiles for the threads.
  const int64_t pq_tile = 256, pq_tiles = (PQ + pq_tile - 1) / pq_tile;
  const int64_t base = g.N * g.groups * pq_tiles, want = 4 * at::get_num_threads();
  const int64_t k_split = base >= want ? 1 : std::min((want + base - 1) / base, (Kg + MR - 1) / MR);
  const int64_t k_tile = ((Kg + k_split - 1) / k_split + MR - 1) / MR * MR;
  const int64_t k_tiles = (Kg + k_tile - 1) / k_tile;
  const int64_t tiles = g.N * g.groups * k_tiles * pq_tiles;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / (k_tile * pq_tile * CRS));
  at::parallel_for(0, tiles, grain, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t pt = t % pq_tiles, kt = (t / pq_tiles) % k_tiles;
      const int64_t grp = (t / (pq_tiles * k_tiles)) % g.groups;
      const int64_t n = t / (pq_tiles * k_tiles * g.groups), k0 = kt * k_tile;
      avx512bf16::fwd_tile(g, x + n * g.C * g.H * g.W, packed + grp * rows * pairs,
                           bias ? bias + grp * Kg : nullptr, y + n * g.K * PQ, grp, k0,
                           std::min(Kg, k0 + k_tile), pt * pq_tile,
                           std::min(PQ, (pt + 1) * pq_tile));
    }
  });
#else
  (void)g, (void)x, (void)w, (void)bias, (void)y;
  TORCH_CHECK(false, "fastconv: the bfloat16 dense kernel is not built for this CPU");
#endif
}

}  // namespace fastconv
