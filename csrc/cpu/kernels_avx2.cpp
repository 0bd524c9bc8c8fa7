// The kernels compiled for AVX2 + FMA (32-byte vectors).
#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_ISA avx2
#define FC_VEC_BYTES 32
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#include "kernels_isa.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
namespace fastconv::avx2 {
template <typename T>
const KernelTable<T>* table() {
  return nullptr;
}
template const KernelTable<float>* table<float>();
template const KernelTable<double>* table<double>();
}  // namespace fastconv::avx2
#endif
