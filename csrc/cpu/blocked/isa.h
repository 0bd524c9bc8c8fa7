// The channel-blocked kernels of the instruction set being compiled (simd/kernels_isa.h).
#pragma once

#include "kernels.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
BlockedKernels<T> blocked_kernels() {
  BlockedKernels<T> k{};
  k.forward = &blocked_fwd<T>;
  k.forward_nhwc_rows = &blocked_fwd_nhwc_rows<T>;
  k.forward_nhwc_direct = &blocked_fwd_nhwc_direct<T>;
  k.grad_input = &blocked_dgrad<T>;
  k.grad_input_nhwc_direct = &blocked_dgrad_nhwc_direct<T>;
  k.grad_weight = &blocked_wgrad<T>;
  k.grad_weight_nhwc_rows = &blocked_wgrad_nhwc_rows<T>;
  k.grad_weight_nhwc_direct = &blocked_wgrad_nhwc_direct<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
