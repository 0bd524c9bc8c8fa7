// The single-threaded CPU kernels of one instruction set, compiled once per ISA (AVX-512,
// AVX2, and a portable baseline; kernels_*.cpp) and picked at run time. Each family folder
// declares its own part of the table (<family>/table.h); the drivers own threading, layout
// and dtype, the kernels only see raw pointers.
#pragma once

#include <cstdint>

#include "../blocked/table.h"
#include "../dense/table.h"
#include "../gemv/table.h"
#include "../grouped/table.h"
#include "../layout/table.h"
#include "../rows/table.h"
#include "../winograd/table.h"

namespace fastconv {

template <typename T>
struct KernelTable {
  const char* isa;
  int vec;  // elements of T per SIMD vector
  RowsKernels<T> rows;
  BlockedKernels<T> blocked;
  DenseKernels<T> dense;
  GemvKernels<T> gemv;
  GroupedKernels<T> grouped;
  WinogradKernels<T> winograd;
  LayoutKernels<T> layout;          // NCHW <-> NHWC copies
  T (*sum)(const T* a, int64_t n);  // a fixed-order sum
};

template <typename T>
const KernelTable<T>& kernels();  // the best table this CPU runs (runtime/isa.h)

namespace avx512 {
template <typename T>
const KernelTable<T>* table();  // nullptr where not compiled
}
namespace avx2 {
template <typename T>
const KernelTable<T>* table();
}
namespace base {
template <typename T>
const KernelTable<T>* table();
}

}  // namespace fastconv
