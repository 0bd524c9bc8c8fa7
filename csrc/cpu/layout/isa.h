// The memory-format kernels of the instruction set being compiled (simd/kernels_isa.h).
#pragma once

#include "kernels.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
LayoutKernels<T> layout_kernels() {
  LayoutKernels<T> k{};
  k.to_nhwc = &layout_to_nhwc<T>;
  k.to_nchw = &layout_to_nchw<T>;
  k.flip_taps = &layout_flip_taps<T>;
  k.flip_runs = &layout_flip_runs<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
