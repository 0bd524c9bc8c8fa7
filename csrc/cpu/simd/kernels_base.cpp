// The portable kernels: 16-byte vectors, which every x86-64 (SSE2) and aarch64 (NEON) CPU
// runs. Correct everywhere; the fallback when neither AVX2 nor AVX-512 is present.
#define FC_ISA base
#define FC_VEC_BYTES 16
#include "kernels_isa.h"
