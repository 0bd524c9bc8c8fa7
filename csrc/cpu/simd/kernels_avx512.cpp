// The kernels compiled for AVX-512 (64-byte vectors, 32 registers).
#define FC_ISA avx512
#define FC_VEC_BYTES 64
#define FC_TARGET "avx512f,avx512vl,avx512dq,avx2,fma"
#include "kernels_isa.h"
