// Transform path of the direct family (one input channel per group, stride 1, dilation
// 1): correlation as a pointwise product of 2-D real FFTs, for kernels large enough that
// O(L log L) per pixel beats O(R*S) per pixel (csrc/cpu/fft.cpp).
#pragma once

#include "../ops.h"

namespace fastconv {

// Whether the transform path can run this geometry (stride 1, dilation 1, non-empty), and
// its estimated single-thread cost in nanoseconds (the cost model in algorithm.cpp).
bool fft_applies(const ConvGeometry& g);
double fft_cost_ns(const ConvGeometry& g);

// The three passes; outputs are allocated by the caller (contiguous, x's dtype) and fully
// overwritten. Inputs are contiguous NCHW float or double.
void fft_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const OptTensor& bias,
                 Tensor& y);
void fft_grad_input(const ConvGeometry& g, const Tensor& gy, const Tensor& w, Tensor& gx);
void fft_grad_weight(const ConvGeometry& g, const Tensor& x, const Tensor& gy, Tensor& gw);

}  // namespace fastconv
