#include "isa.h"

#include <cstdlib>
#include <string>

namespace fastconv {
namespace {

Isa cap() {
  static const Isa c = [] {
    const char* env = std::getenv("FASTCONV_CPU_ISA");
    const std::string s = env ? env : "avx512";
    return s == "base" ? Isa::kBase : s == "avx2" ? Isa::kAvx2 : Isa::kAvx512;
  }();
  return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// (__builtin_cpu_supports takes string literals only.)
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

}  // namespace

Isa best_isa() {
  static const Isa best = [] {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (cap() >= Isa::kAvx512 && has_avx512()) return Isa::kAvx512;
    if (cap() >= Isa::kAvx2 && has_avx2()) return Isa::kAvx2;
#endif
    return Isa::kBase;
  }();
  return best;
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool ok = [] {
    __builtin_cpu_init();
    return best_isa() == Isa::kAvx512 && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
  }();
  return ok;
#else
  return false;
#endif
}

}  // namespace fastconv
