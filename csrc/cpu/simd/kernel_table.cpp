#include "kernel_table.h"

#include "../runtime/isa.h"

namespace fastconv {

template <typename T>
const KernelTable<T>& kernels() {
  static const KernelTable<T>* best = [] {
    const Isa isa = best_isa();
    if (isa == Isa::kAvx512 && avx512::table<T>()) return avx512::table<T>();
    if (isa >= Isa::kAvx2 && avx2::table<T>()) return avx2::table<T>();
    return base::table<T>();
  }();
  return *best;
}
template const KernelTable<float>& kernels<float>();
template const KernelTable<double>& kernels<double>();

}  // namespace fastconv
