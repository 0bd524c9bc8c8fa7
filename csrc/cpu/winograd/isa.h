// The Winograd kernels of the instruction set being compiled (simd/kernels_isa.h).
#pragma once

#include "forward.h"
#include "grad_weight.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
WinogradKernels<T> winograd_kernels() {
  WinogradKernels<T> k{};
  k.pack_weight = &winograd_pack_weight<T>;
  k.forward_tiles = &winograd_fwd_tile<T>;
  k.grad_weight_block = &winograd_wgrad_block<T>;
  k.grad_weight_finish = &winograd_wgrad_finish<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
