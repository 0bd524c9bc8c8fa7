// Body of each per-ISA translation unit: instantiates the kernel families for float and
// double and exposes them as one KernelTable, filled by field name. The including file sets
// FC_ISA (the namespace), FC_VEC_BYTES and, for the x86 builds, FC_TARGET (the GCC/Clang
// target string); the target applies only to functions defined below, so inline code from
// the headers included first is never compiled for an instruction set the CPU may lack.
#include <algorithm>
#include <cstdint>

#include "../runtime/workspace.h"
#include "kernel_table.h"

#define FC_STR2(x) #x
#define FC_STR(x) FC_STR2(x)
#define FC_PRAGMA(x) _Pragma(#x)
// One more level so that the target string macro is expanded before stringizing.
#define FC_GCC_TARGET(t) FC_PRAGMA(GCC target(t))
#define FC_CLANG_TARGET_PUSH(t) \
  FC_PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))

#if defined(FC_TARGET) && !(defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)))
// Not an x86-64 GCC/Clang build: this instruction set is not available at all.
namespace fastconv {
namespace FC_ISA {
template <typename T>
const KernelTable<T>* table() {
  return nullptr;
}
template const KernelTable<float>* table<float>();
template const KernelTable<double>* table<double>();
}  // namespace FC_ISA
}  // namespace fastconv
#else

#if defined(FC_TARGET) && defined(__clang__)
FC_CLANG_TARGET_PUSH(FC_TARGET)
#elif defined(FC_TARGET)
FC_PRAGMA(GCC push_options)
FC_GCC_TARGET(FC_TARGET)
#endif

#include "vec.h"
#include "../rows/isa.h"
#include "../blocked/isa.h"
#include "../dense/isa.h"
#include "../gemv/isa.h"
#include "../grouped/isa.h"
#include "../layout/isa.h"
#include "../winograd/isa.h"

namespace fastconv {
namespace FC_ISA {

template <typename T>
const KernelTable<T>* table() {
  static const KernelTable<T> t = [] {
    KernelTable<T> k{};
    k.isa = FC_STR(FC_ISA);
    k.vec = Vec<T>::size;
    k.rows = rows_kernels<T>();
    k.blocked = blocked_kernels<T>();
    k.dense = dense_kernels<T>();
    k.gemv = gemv_kernels<T>();
    k.grouped = grouped_kernels<T>();
    k.winograd = winograd_kernels<T>();
    k.layout = layout_kernels<T>();
    k.sum = &sum<T>;
    return k;
  }();
  return &t;
}
template const KernelTable<float>* table<float>();
template const KernelTable<double>* table<double>();

}  // namespace FC_ISA
}  // namespace fastconv

#if defined(FC_TARGET) && defined(__clang__)
FC_PRAGMA(clang attribute pop)
#elif defined(FC_TARGET)
FC_PRAGMA(GCC pop_options)
#endif
#endif
