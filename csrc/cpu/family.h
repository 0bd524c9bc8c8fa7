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

// Which layouts a family's pass takes its activations in: NCHW only (kNone); either, all of
// them channels_last (kAll: x, y, grad_output, grad_input in NHWC, and grad-weight written in
// the weight's channels_last order [K][R][S][C/groups]); or channels_last for every caller
// (kOnly: NCHW callers get layout copies in and out; dense passes where select.cpp finds
// the copies cheap next to the work).
enum class NhwcSupport : uint8_t { kNone, kAll, kOnly };

// w_layout: the weight's, contiguous [K][C/groups][R][S] or (kNhwc) channels_last
// [K][R][S][C/groups]; only passes that take NHWC activations take a channels_last weight.
template <typename T>
struct ForwardArgs {
  const T* x;
  const T* w;
  const T* bias;  // [K] or nullptr
  T* y;
  Layout x_layout = Layout::kNchw, y_layout = Layout::kNchw, w_layout = Layout::kNchw;
};

template <typename T>
struct GradInputArgs {
  const T* gy;
  const T* w;
  T* gx;
  Layout gy_layout = Layout::kNchw, gx_layout = Layout::kNchw, w_layout = Layout::kNchw;
};

template <typename T>
struct GradWeightArgs {
  const T* x;
  const T* gy;
  T* gw;
  Layout x_layout = Layout::kNchw, gy_layout = Layout::kNchw;
};

// Declares a family's three passes (inside namespace fastconv::<family>), and `run`, the
// pass its arguments name, so the entry point dispatches every pass with one switch.
#define FASTCONV_FAMILY_PASSES()                                       \
  template <typename T>                                                \
  void forward(const ConvGeometry& g, const ForwardArgs<T>& a);        \
  template <typename T>                                                \
  void grad_input(const ConvGeometry& g, const GradInputArgs<T>& a);   \
  template <typename T>                                                \
  void grad_weight(const ConvGeometry& g, const GradWeightArgs<T>& a); \
  template <typename T>                                                \
  void run(const ConvGeometry& g, const ForwardArgs<T>& a) {           \
    forward(g, a);                                                     \
  }                                                                    \
  template <typename T>                                                \
  void run(const ConvGeometry& g, const GradInputArgs<T>& a) {         \
    grad_input(g, a);                                                  \
  }                                                                    \
  template <typename T>                                                \
  void run(const ConvGeometry& g, const GradWeightArgs<T>& a) {        \
    grad_weight(g, a);                                                 \
  }

// Instantiates them for the compute dtypes (in the family's driver).
#define FASTCONV_INSTANTIATE_FAMILY_PASSES()                                           \
  template void forward<float>(const ConvGeometry&, const ForwardArgs<float>&);        \
  template void forward<double>(const ConvGeometry&, const ForwardArgs<double>&);      \
  template void grad_input<float>(const ConvGeometry&, const GradInputArgs<float>&);   \
  template void grad_input<double>(const ConvGeometry&, const GradInputArgs<double>&); \
  template void grad_weight<float>(const ConvGeometry&, const GradWeightArgs<float>&); \
  template void grad_weight<double>(const ConvGeometry&, const GradWeightArgs<double>&);

}  // namespace fastconv
