// The Winograd kernels of the instruction set being compiled (simd/kernels_isa.h).
#pragma once

#include "forward.h"
#include "grad_weight.h"
#include "nhwc.h"
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
  k.nhwc_pack_weight = &winograd_nhwc_pack_weight<T>;
  k.nhwc_forward_tiles = &winograd_nhwc_fwd_tiles<T>;
  k.nhwc_grad_weight_block = &winograd_nhwc_wgrad_block<T>;
  k.nhwc_grad_weight_finish = &winograd_nhwc_wgrad_finish<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
