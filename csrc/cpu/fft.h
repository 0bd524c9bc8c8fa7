// Transform path of the direct family (one input channel per group, stride 1, dilation
// 1): correlation as a pointwise product of 2-D real FFTs, for kernels large enough that
// O(L log L) per pixel beats O(R*S) per pixel (csrc/cpu/fft.cpp).
#pragma once

#include "../ops.h"

namespace fastconv {

// Which algorithm the direct family uses: the cost model's choice, or one forced (tests,
// benchmarks). Process-wide; set from Python with fastconv.set_cpu_algorithm.
enum class CpuAlgorithm { kAuto = 0, kDirect = 1, kFft = 2, kBlocked = 3 };
void set_cpu_algorithm(CpuAlgorithm a);
CpuAlgorithm cpu_algorithm();

// True when this geometry should run on the FFT path: it applies, and the policy or the
// cost model picks it.
bool use_fft(const ConvGeometry& g);

// The CPU kernel family a forward call runs: "dense", "dense-bf16", "direct", "blocked" or
// "fft"
// (csrc/cpu/conv2d.cpp; for tests and benchmarks).
const char* cpu_family(const ConvGeometry& g, const Tensor& input);

// The three passes; outputs are allocated by the caller (contiguous, x's dtype) and fully
// overwritten. Inputs are contiguous NCHW float or double.
void fft_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const OptTensor& bias,
                 Tensor& y);
void fft_grad_input(const ConvGeometry& g, const Tensor& gy, const Tensor& w, Tensor& gx);
void fft_grad_weight(const ConvGeometry& g, const Tensor& x, const Tensor& gy, Tensor& gw);

}  // namespace fastconv
