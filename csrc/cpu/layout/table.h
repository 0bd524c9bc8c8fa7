// The memory-format kernels of one instruction set (kernels.h), as layout.cpp calls them.
#pragma once

#include <cstdint>

namespace fastconv {

template <typename T>
struct LayoutKernels {
  // Positions [p0, p1) of one image of C channels and HW positions: NCHW src ([C][HW]) to
  // NHWC dst ([HW][C]), and back.
  void (*to_nhwc)(const T* src, T* dst, int64_t C, int64_t HW, int64_t p0, int64_t p1);
  void (*to_nchw)(const T* src, T* dst, int64_t C, int64_t HW, int64_t p0, int64_t p1);
  // One group's channels_last weight [K][RS][C] to the flipped, transposed [C][K][RS] of
  // grad-input as a forward (rows K*RS apart), output channels [k0, k1).
  void (*flip_taps)(const T* src, T* dst, int64_t K, int64_t C, int64_t RS, int64_t k0, int64_t k1);
  // The same from a contiguous weight [K][C][RS] (RS at most one vector), input channels
  // [c0, c1).
  void (*flip_runs)(const T* src, T* dst, int64_t K, int64_t C, int64_t RS, int64_t c0, int64_t c1);
};

}  // namespace fastconv
