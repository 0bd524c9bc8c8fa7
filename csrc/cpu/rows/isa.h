// The row kernels of the instruction set being compiled (simd/kernels_isa.h includes this).
#pragma once

#include "forward.h"
#include "grad_input.h"
#include "grad_weight.h"
#include "table.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
RowsKernels<T> rows_kernels() {
  RowsKernels<T> k{};
  k.forward = &rows_forward<T>;
  k.grad_input_plane = &rows_grad_input_plane<T>;
  k.grad_weight = &rows_grad_weight<T>;
  return k;
}

}  // namespace FC_ISA
}  // namespace fastconv
