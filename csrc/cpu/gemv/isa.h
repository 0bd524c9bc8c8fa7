// The few-positions kernels of the instruction set being compiled (simd/kernels_isa.h).
#pragma once

#include "kernels.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
GemvKernels<T> gemv_kernels() {
  GemvKernels<T> k{};
  k.forward = &gemv_forward<T>;
  k.grad_input = &gemv_grad_input<T>;
  k.grad_weight = &gemv_grad_weight<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
