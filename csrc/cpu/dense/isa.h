// The implicit-GEMM kernels of the instruction set being compiled (simd/kernels_isa.h).
#pragma once

#include "kernels.h"
#include "nhwc.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
DenseKernels<T> dense_kernels() {
  DenseKernels<T> k{};
  k.forward_tile = &dense_fwd_tile<T>;
  k.grad_weight_tile = &dense_wgrad_tile<T>;
  k.grad_input_tile = &dense_dgrad_tile<T>;
  k.nhwc_lanes = &nhwc_lanes<T>;
  k.nhwc_pack_panels = &nhwc_pack_panels<T>;
  k.nhwc_forward_tile = &dense_nhwc_fwd_tile<T>;
  k.nhwc_pack_grad_input_weight = &dense_nhwc_pack_dgrad_weight<T>;
  k.nhwc_grad_input_tile = &dense_nhwc_dgrad_tile<T>;
  k.nhwc_grad_weight_tile = &dense_nhwc_wgrad_tile<T>;
  k.nhwc_grad_weight_rows_tile = &dense_nhwc_wgrad_rows_tile<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
