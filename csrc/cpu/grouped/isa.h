// The grouped-layer kernels of the instruction set being compiled (simd/kernels_isa.h).
#pragma once

#include "kernels.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
GroupedKernels<T> grouped_kernels() {
  GroupedKernels<T> k{};
  k.pack_weight = &grouped_pack_weight<T>;
  k.forward_tile = &grouped_fwd_tile<T>;
  k.grad_input_tile = &grouped_dgrad_tile<T>;
  k.grad_weight_tile = &grouped_wgrad_tile<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
