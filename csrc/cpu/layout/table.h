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
};

}  // namespace fastconv
