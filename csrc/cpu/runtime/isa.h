// Which SIMD instruction sets this CPU runs, and the FASTCONV_CPU_ISA cap on them.
#pragma once

namespace fastconv {

enum class Isa { kBase = 0, kAvx2 = 1, kAvx512 = 2 };

// The widest kernel build this CPU runs and FASTCONV_CPU_ISA permits. FASTCONV_CPU_ISA=avx2
// or base caps the choice (it never raises it past what the CPU has), so the narrower
// builds are tested on a machine with AVX-512. Read once.
Isa best_isa();

// Whether the CPU runs vdpbf16ps (AVX-512 BF16) and the cap allows AVX-512.
bool cpu_has_avx512_bf16();

}  // namespace fastconv
