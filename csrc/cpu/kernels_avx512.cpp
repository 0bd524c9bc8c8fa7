// The kernels compiled for AVX-512 (64-byte vectors, 32 registers).
#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_ISA avx512
#define FC_VEC_BYTES 64
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#endif
#include "kernels_isa.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
namespace fastconv::avx512 {
template <typename T>
const KernelTable<T>* table() {
  return nullptr;
}
template const KernelTable<float>* table<float>();
template const KernelTable<double>* table<double>();
}  // namespace fastconv::avx512
#endif
