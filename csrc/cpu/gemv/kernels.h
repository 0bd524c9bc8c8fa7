// Few-positions kernels: a layer with a handful of output positions (a squeeze-excitation
// 1x1 layer on a pooled 1x1 map) is a matrix-vector product per position, bound by reading
// the weight once. These read the weight in place, each loaded vector serving every
// position of a block, where a GEMM would pack the weight and fill one row of its
// micro-tile. Register blocks are 4 x 4 vectors where there are 32 vector registers, else
// 2 x 4. Included by the per-ISA translation units after vec.h.
#pragma once

#include <algorithm>

#include "table.h"

namespace fastconv {
namespace FC_ISA {

constexpr int kGemvBlock = FC_VEC_BYTES >= 64 ? 4 : 2;  // rows (or weight rows) per block
constexpr int kGemvWide = 4;                            // the other dimension of a block

// The first lanes of the vector at lane offset `at` of a run of n values (0 past the end).
template <typename T>
inline int lanes_at(int64_t n, int64_t at) {
  return static_cast<int>(std::clamp<int64_t>(n - at, 0, Vec<T>::size));
}

// y[j][i] = bias[i] + xr[j] . wr[i] for kb weight rows and MB activation rows: vectors along
// the depth, one horizontal sum per result. MB is the block's real row count, so a batch-1
// layer does one row's work, not kGemvBlock copies of it.
template <int MB, typename T>
inline void gemv_forward_block(int64_t depth, const T* const* xr, const T* const* wr, int kb,
                               const T* bias, T* y, int64_t ldy) {
  constexpr int V = Vec<T>::size, KB = kGemvWide;
  vec_t<T> acc[KB][MB] = {};
  const auto step = [&](int64_t c, int n) {
    vec_t<T> wv[KB];
#pragma GCC unroll 4
    for (int i = 0; i < KB; ++i) wv[i] = load_lanes(wr[i] + c, n);
#pragma GCC unroll 4
    for (int j = 0; j < MB; ++j) {
      const vec_t<T> xv = load_lanes(xr[j] + c, n);
#pragma GCC unroll 4
      for (int i = 0; i < KB; ++i) acc[i][j] += wv[i] * xv;
    }
  };
  int64_t c = 0;
  for (; c + V <= depth; c += V) step(c, V);
  if (c < depth) step(c, static_cast<int>(depth - c));
  for (int i = 0; i < kb; ++i)
    for (int j = 0; j < MB; ++j) y[j * ldy + i] = (bias ? bias[i] : T(0)) + hsum<T>(acc[i][j]);
}

// y[m][k] = bias[k] + x[m] . w[k]: blocks of kGemvWide weight rows x kGemvBlock activation
// rows.
template <typename T>
void gemv_forward(int64_t rows, int64_t depth, const T* x, int64_t ldx, const T* w, int64_t ldw,
                  const T* bias, T* y, int64_t ldy, int64_t k0, int64_t k1) {
  constexpr int KB = kGemvWide, MB = kGemvBlock;
  static_assert(MB <= 4, "the partial blocks below are 1, 2 and MB - 1 rows");
  for (int64_t k = k0; k < k1; k += KB) {
    const int kb = static_cast<int>(std::min<int64_t>(KB, k1 - k));
    const T* wr[KB];  // rows past kb repeat the last one and are never stored
    for (int i = 0; i < KB; ++i) wr[i] = w + (k + std::min(i, kb - 1)) * ldw;
    const T* b = bias ? bias + k : nullptr;
    for (int64_t m = 0; m < rows; m += MB) {
      const int mb = static_cast<int>(std::min<int64_t>(MB, rows - m));
      const T* xr[MB];
      for (int j = 0; j < mb; ++j) xr[j] = x + (m + j) * ldx;
      T* ym = y + m * ldy + k;
      if (mb == MB)
        gemv_forward_block<MB>(depth, xr, wr, kb, b, ym, ldy);
      else if (mb == 1)
        gemv_forward_block<1>(depth, xr, wr, kb, b, ym, ldy);
      else if constexpr (MB > 2) {
        if (mb == 2)
          gemv_forward_block<2>(depth, xr, wr, kb, b, ym, ldy);
        else
          gemv_forward_block<MB - 1>(depth, xr, wr, kb, b, ym, ldy);
      }
    }
  }
}

// gx[m][c] = sum over k of gy[m][k] * w[k][c]: kGemvBlock rows x kGemvWide vectors of input
// channels, one weight row of vectors per step.
template <typename T>
void gemv_grad_input(int64_t rows, int64_t depth, const T* gy, int64_t ldgy, const T* w,
                     int64_t ldw, T* gx, int64_t ldgx, int64_t c0, int64_t c1) {
  constexpr int V = Vec<T>::size, MB = kGemvBlock, CB = kGemvWide;
  for (int64_t c = c0; c < c1; c += CB * V) {
    const int64_t cn = std::min<int64_t>(CB * V, c1 - c);
    for (int64_t m = 0; m < rows; m += MB) {
      const int mb = static_cast<int>(std::min<int64_t>(MB, rows - m));
      const T* gr[MB];
      for (int j = 0; j < MB; ++j) gr[j] = gy + (m + std::min(j, mb - 1)) * ldgy;
      vec_t<T> acc[MB][CB] = {};
      const auto run = [&](auto whole) {
        for (int64_t k = 0; k < depth; ++k) {
          const T* wk = w + k * ldw + c;
          vec_t<T> wv[CB];
#pragma GCC unroll 4
          for (int h = 0; h < CB; ++h)
            wv[h] = whole ? loadu(wk + h * V) : loadu_n(wk + h * V, lanes_at<T>(cn, h * V));
#pragma GCC unroll 4
          for (int j = 0; j < MB; ++j) {
            const vec_t<T> g = splat(gr[j][k]);
#pragma GCC unroll 4
            for (int h = 0; h < CB; ++h) acc[j][h] += g * wv[h];
          }
        }
      };
      if (cn == CB * V)
        run(std::true_type{});
      else
        run(std::false_type{});
      for (int j = 0; j < mb; ++j)
        for (int h = 0; h < CB; ++h)
          if (const int n = lanes_at<T>(cn, h * V); n > 0)
            store_lanes(gx + (m + j) * ldgx + c + h * V, acc[j][h], n);
    }
  }
}

// gw[k][c] = sum over m (in order) of gy[m][k] * x[m][c]: kGemvBlock output channels x
// kGemvWide vectors of input channels, one activation row of vectors per step.
template <typename T>
void gemv_grad_weight(int64_t rows, int64_t channels, const T* gy, int64_t ldgy, const T* x,
                      int64_t ldx, T* gw, int64_t ldgw, int64_t k0, int64_t k1) {
  constexpr int V = Vec<T>::size, KB = kGemvBlock, CB = kGemvWide;
  for (int64_t k = k0; k < k1; k += KB) {
    const int kb = static_cast<int>(std::min<int64_t>(KB, k1 - k));
    for (int64_t c = 0; c < channels; c += CB * V) {
      const int64_t cn = std::min<int64_t>(CB * V, channels - c);
      vec_t<T> acc[KB][CB] = {};
      for (int64_t m = 0; m < rows; ++m) {
        const T* xm = x + m * ldx + c;
        vec_t<T> xv[CB];
#pragma GCC unroll 4
        for (int h = 0; h < CB; ++h) xv[h] = load_lanes(xm + h * V, lanes_at<T>(cn, h * V));
#pragma GCC unroll 4
        for (int i = 0; i < KB; ++i) {
          const vec_t<T> g = splat(gy[m * ldgy + k + std::min(i, kb - 1)]);
#pragma GCC unroll 4
          for (int h = 0; h < CB; ++h) acc[i][h] += g * xv[h];
        }
      }
      for (int i = 0; i < kb; ++i)
        for (int h = 0; h < CB; ++h)
          if (const int n = lanes_at<T>(cn, h * V); n > 0)
            store_lanes(gw + (k + i) * ldgw + c + h * V, acc[i][h], n);
    }
  }
}

}  // namespace FC_ISA
}  // namespace fastconv
