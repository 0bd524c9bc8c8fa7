// What every CPU kernel family's driver takes: raw pointers in the compute dtype (float or
// double) and the memory layout of each activation. Weights are always contiguous
// [K][C/groups][R][S]; activations are contiguous NCHW or channels_last (NHWC) as their
// Layout says. Each family folder (rows/, blocked/, dense/, winograd/, fft/) declares
// forward, grad_input and grad_weight on these in namespace fastconv::<family>.
#pragma once

#include <cstdint>

#include "../conv_geometry.h"

namespace fastconv {

enum class Layout : uint8_t { kNchw, kNhwc };

template <typename T>
struct ForwardArgs {
  const T* x;
  const T* w;
  const T* bias;  // [K] or nullptr
  T* y;
  Layout x_layout = Layout::kNchw, y_layout = Layout::kNchw;
};

template <typename T>
struct GradInputArgs {
  const T* gy;
  const T* w;
  T* gx;
  Layout gy_layout = Layout::kNchw, gx_layout = Layout::kNchw;
};

template <typename T>
struct GradWeightArgs {
  const T* x;
  const T* gy;
  T* gw;
  Layout x_layout = Layout::kNchw, gy_layout = Layout::kNchw;
};

}  // namespace fastconv
