// The kernels compiled for AVX2 + FMA (32-byte vectors).
#define FC_ISA avx2
#define FC_VEC_BYTES 32
#define FC_TARGET "avx2,fma"
#include "kernels_isa.h"
