// Dense forward tiles for bfloat16 with vdpbf16ps: 32 bf16 multiply-adds into 16 float32
// lanes per instruction, twice the float32 FMA rate. The implicit GEMM of dense/ -- y = W *
// im2col(x) on the tiles of dense/tiling.h, one bounded packed slice of the im2col matrix at
// a time, dense/im2col.h's im2col_row -- with k packed in pairs, the unit vdpbf16ps reduces
// (low half = even k):
//   A (weights): panels[m / MR][k / 2][m % MR]      one 32-bit pair per row: a broadcast
//   B (im2col):  panels[j / NR][k / 2][j % NR][2]   two zmm per pair (NR = 32 positions)
// Accumulation is float32 and the caller rounds once to bfloat16. bf16 x bf16 products are
// exact in float32; vdpbf16ps flushes denormals, far below bfloat16's own rounding error.
#include "dense_bf16.h"

#include <algorithm>

#include "../runtime/workspace.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

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
#include "../simd/vec.h"
#include "../dense/gemm.h"
#include "../dense/im2col.h"

namespace fastconv {
namespace avx512bf16 {
namespace {

constexpr int kMR = dense_bf16::kMR, kNR = dense_bf16::kNR;
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

// Output channels [k0, k1) of group grp x positions [j0, j1) of the whole batch. A tile
// inside one image accumulates straight into y; a tile spanning images into a block copied
// out image by image (as dense/kernels.h's dense_fwd_tile).
void fwd_tile(const ConvGeometry& g, const uint16_t* x, const uint32_t* packed_w, const float* bias,
              float* y, int64_t grp, int64_t k0, int64_t k1, int64_t j0, int64_t j1) {
  const int64_t RS = g.R * g.S, CRS = g.C_per_group() * RS, PQ = g.P * g.Q, HW = g.H * g.W;
  const int64_t pairs = (CRS + 1) / 2, nb = j1 - j0, nbp = round_up(nb, kNR), m = k1 - k0;
  const bool one_image = j0 / PQ == (j1 - 1) / PQ;
  const int64_t kg0 = grp * g.K_per_group() + k0;  // first output channel of the tile
  const Workspace<float> tile_ws(Slot::kTile, one_image ? 0 : m * nb);
  float* c = one_image ? y + ((j0 / PQ) * g.K + kg0) * PQ + j0 % PQ : tile_ws.data();
  const int64_t ldc = one_image ? PQ : nb;
  for (int64_t k = 0; k < m; ++k) std::fill_n(c + k * ldc, nb, bias ? bias[k0 + k] : 0.f);
  const Workspace<uint16_t> b_ws(Slot::kPackB, std::min(kKC2, round_up(CRS, 2)) * nbp);
  const Workspace<uint16_t> row0_ws(Slot::kRow, nb), row1_ws(Slot::kRow2, nb);
  uint16_t *b = b_ws.data(), *row0 = row0_ws.data(), *row1 = row1_ws.data();
  const uint16_t* xg = x + grp * g.C_per_group() * HW;
  for (int64_t kk0 = 0; kk0 < CRS; kk0 += kKC2) {
    const int64_t kc = std::min(kKC2, CRS - kk0), kp = (kc + 1) / 2;
    for (int64_t p = 0; p < kp; ++p) {
      for (int h = 0; h < 2; ++h) {
        const int64_t k = kk0 + 2 * p + h;
        uint16_t* row = h ? row1 : row0;
        if (k >= kk0 + kc) {
          std::fill_n(row, nb, uint16_t(0));
          continue;
        }
        for_each_image_run(PQ, j0, j1, [&](int64_t n, int64_t pq, int64_t len, int64_t off) {
          im2col_row(g, xg + (n * g.C + k / RS) * HW, (k % RS) / g.S, k % g.S, pq, len, row + off);
        });
      }
      put_b_pair(row0, row1, nb, p, kp, b);
    }
    const uint32_t* a = packed_w + (k0 / kMR) * pairs * kMR + (kk0 / 2) * kMR;
    for (int64_t j = 0; j < nb; j += kNR) {
      const uint16_t* bp = b + (j / kNR) * kp * 2 * kNR;
      const int nr = static_cast<int>(std::min<int64_t>(kNR, nb - j));
      for (int64_t i = 0; i < m; i += kMR)
        micro_kernel(kp, a + (i / kMR) * pairs * kMR, bp, c + i * ldc + j, ldc,
                     static_cast<int>(std::min<int64_t>(kMR, m - i)), nr);
    }
  }
  if (!one_image)
    for_each_image_run(PQ, j0, j1, [&](int64_t n, int64_t pq, int64_t len, int64_t off) {
      for (int64_t k = 0; k < m; ++k)
        std::copy_n(c + k * ldc + off, len, y + (n * g.K + kg0 + k) * PQ + pq);
    });
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
namespace dense_bf16 {

bool built() {
#if defined(FC_BF16_BUILD)
  return true;
#else
  return false;
#endif
}

void forward_tile(const ConvGeometry& g, const uint16_t* x, const uint32_t* packed_w,
                  const float* bias, float* y, int64_t grp, int64_t k0, int64_t k1, int64_t j0,
                  int64_t j1) {
#if defined(FC_BF16_BUILD)
  avx512bf16::fwd_tile(g, x, packed_w, bias, y, grp, k0, k1, j0, j1);
#else
  (void)g, (void)x, (void)packed_w, (void)bias, (void)y, (void)grp, (void)k0, (void)k1, (void)j0,
      (void)j1;
#endif
}

}  // namespace dense_bf16
}  // namespace fastconv
