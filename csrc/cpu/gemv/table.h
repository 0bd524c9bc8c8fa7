// The few-positions kernels of one instruction set (kernels.h), as the driver calls them:
// products of a handful of activation rows with a weight read in place, single-threaded.
// Every matrix is rows of unit-stride values, `ld*` apart.
#pragma once

#include <cstdint>

namespace fastconv {

template <typename T>
struct GemvKernels {
  // y[m][k] = bias[k] + sum over c < depth of x[m][c] * w[k][c], for m < rows and output
  // channels k in [k0, k1) (bias may be null).
  void (*forward)(int64_t rows, int64_t depth, const T* x, int64_t ldx, const T* w, int64_t ldw,
                  const T* bias, T* y, int64_t ldy, int64_t k0, int64_t k1);
  // gx[m][c] = sum over k < depth of gy[m][k] * w[k][c], for m < rows and input channels c in
  // [c0, c1).
  void (*grad_input)(int64_t rows, int64_t depth, const T* gy, int64_t ldgy, const T* w,
                     int64_t ldw, T* gx, int64_t ldgx, int64_t c0, int64_t c1);
  // gw[k][c] = sum over m < rows of gy[m][k] * x[m][c], in order of m, for output channels k
  // in [k0, k1) and c < channels.
  void (*grad_weight)(int64_t rows, int64_t channels, const T* gy, int64_t ldgy, const T* x,
                      int64_t ldx, T* gw, int64_t ldgw, int64_t k0, int64_t k1);
};

}  // namespace fastconv
